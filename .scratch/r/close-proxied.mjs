// createServer + proxy(startup) to PostgreSQL: server.close() with one idle proxied session and
// one running pg_sleep(30); cancels in flight at the same time. What do clients see, how long
// does close() take, connectionCount during/after?
import pg from '/work/main/node_modules/pg/lib/index.js';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer } from '/work/main/index.js';
import { cancelPacket, sleep } from './lib.mjs';
const pgPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8'));
const server = createServer({ authMode: 'none', onCancel() {}, onStartup(s, c) { c.proxy({ host: '127.0.0.1', port: pgPort, startup: true }); return true; } });
const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
const mk = async () => { const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: 'postgres', database: 'postgres' }); c.on('error', (e) => console.log('client error event', e.message)); await c.connect(); return c; };
const idle = await mk(), busy = await mk();
const t0 = Date.now();
const busyQ = busy.query('select pg_sleep(30)').then(() => 'done', (e) => `${e.code ?? ''} ${e.message}`).then((r) => `${r} @${Date.now() - t0}ms`);
await sleep(300);
console.log('count before close', server.connectionCount);
// cancels in flight while closing
const cancels = Array.from({ length: 200 }, () => new Promise((res) => { const s = net.connect(port, '127.0.0.1'); s.on('error', () => res('err')); s.on('connect', () => { const b = cancelPacket(busy.processID, Buffer.alloc(4)); b.writeInt32BE(busy.secretKey, 12); s.write(b); }); s.on('close', () => res('closed')); setTimeout(() => { s.destroy(); res('timeout'); }, 5000); }));
const closing = server.close({ gracePeriod: Number(process.env.GRACE ?? 1000) }).then(() => Date.now() - t0);
console.log('close resolved after ms', await closing, 'count', server.connectionCount);
console.log('busy query:', await Promise.race([busyQ, sleep(35000).then(() => 'TIMEOUT')]));
console.log('idle query after close:', await Promise.race([idle.query('select 1').then(() => 'ok (still proxied after close resolved)', (e) => 'ERR ' + e.message), sleep(5000).then(() => 'TIMEOUT')]));
const tally = {}; for (const r of await Promise.all(cancels)) tally[r] = (tally[r] ?? 0) + 1; console.log('cancels', tally);
await idle.end().catch(() => {}); await busy.end().catch(() => {});

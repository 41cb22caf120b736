// Against a proxy() gateway (srv.mjs PROXY=startup AUTH=none) in front of PostgreSQL:
// 1) K clients run `select pg_sleep(30)` through the proxy (node-postgres), 2) a flood of N valid
// CancelRequests for them (+ N wrong ones) while 3) optionally the server is told to close.
// Reports what each query ended with and how long it took.
import pg from '/work/main/node_modules/pg/lib/index.js';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import crypto from 'node:crypto';
import { cancelPacket, sleep } from './lib.mjs';
const port = Number(readFileSync(process.env.PORTFILE, 'utf8'));
const K = Number(process.env.K ?? 20), N = Number(process.env.N ?? 2000);
const clients = [];
for (let i = 0; i < K; i++) { const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: 'postgres', database: 'postgres' }); c.on('error', () => {}); await c.connect(); clients.push(c); }
const keys0 = clients.map((c) => [c.processID, c.secretKey]);
const keys = keys0; console.log('first client key seen by client', keys[0]);
const t0 = Date.now();
const results = clients.map((c) => c.query('select pg_sleep(30)').then(() => 'done', (e) => `${e.code ?? ''} ${e.message.slice(0, 50)}`).then((r) => `${r} @${Date.now() - t0}ms`));
await sleep(500);
const cancel = (pid, secret) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1'); const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, 5000);
  s.on('connect', () => { const b = cancelPacket(pid, Buffer.alloc(4)); b.writeInt32BE(secret, 12); s.write(b); });
  s.on('error', () => {}); s.on('close', () => { clearTimeout(t); resolve('closed'); });
});
const tally = {}; let next = 0;
await Promise.all(Array.from({ length: 50 }, async () => {
  while (next < N) { const i = next++; const [pid, sec] = i % 2 ? [crypto.randomInt(1, 2 ** 31 - 1), crypto.randomInt(-(2 ** 31), 2 ** 31 - 1)] : keys[(i >> 1) % K]; const r = await cancel(pid, sec); tally[r] = (tally[r] ?? 0) + 1; }
}));
console.log('cancel flood', JSON.stringify(tally), Date.now() - t0, 'ms');
const outcome = {}; for (const r of await Promise.race([Promise.all(results), sleep(40000).then(() => ['TIMEOUT'])])) { const k = r.replace(/@\d+ms/, ''); outcome[k] = (outcome[k] ?? 0) + 1; }
console.log('queries', JSON.stringify(outcome), 'max ms', Math.max(...(await Promise.all(results)).map((r) => +(/@(\d+)ms/.exec(r)?.[1] ?? 0))));
// second query on each: does the session still work?
const second = await Promise.all(clients.map((c) => c.query('select 1 as x').then((r) => 'ok', (e) => 'ERR ' + e.message.slice(0, 40))));
console.log('after', JSON.stringify(second.reduce((a, k) => (a[k] = (a[k] ?? 0) + 1, a), {})));
await Promise.all(clients.map((c) => c.end().catch(() => {})));

// Generic target server in its own process. Reads commands on stdin: mem | count | close | gc.
// DRIVER=server|js|native  AUTH=scramSha256|none|md5Password  TLS=1  PROXY=startup (to pg)  CANCELHOOK=1
// Writes its port to $PORTFILE.
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import readline from 'node:readline';
import { createServer, PostgresConnection, createScramSha256Secret } from '/work/main/index.js';
import { result } from './lib.mjs';
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const secret = createScramSha256Secret('pw');
const stats = { cancels: 0, uncaught: 0, warnings: 0, msgs: 0, conns: 0 };
process.on('uncaughtException', (e) => { stats.uncaught++; console.log('UNCAUGHT', e?.stack ?? e); });
process.on('unhandledRejection', (e) => { stats.uncaught++; console.log('UNHANDLED', e?.stack ?? e); });
process.on('warning', (w) => { stats.warnings++; console.log('WARNING', w.code, w.message); });
const opts = { authMode: process.env.AUTH ?? 'scramSha256', authTimeout: 5000 };
if (opts.authMode === 'scramSha256') opts.getScramSecret = ({ user }) => (process.env.SECRET === 'password' ? { password: 'pw' } : user.startsWith('u') ? secret : null);
if (opts.authMode === 'md5Password' || opts.authMode === 'cleartextPassword') opts.validateCredentials = () => true;
if (process.env.TLS === '1') opts.tls = { key: readFileSync(`${dir}/localhost-key.pem`), cert: readFileSync(`${dir}/localhost-cert.pem`) };
if (process.env.CANCELHOOK !== '0') opts.onCancel = () => { stats.cancels++; };
if (process.env.PROXY === 'startup') {
  const pgPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8'));
  opts.onStartup = (state, c) => { c.proxy({ host: '127.0.0.1', port: pgPort, startup: true }); return true; };
} else if (process.env.ANSWER !== '0') {
  opts.onMessage = async (data, state, c) => {
    if (!state.isAuthenticated || data[0] !== 0x51) return false;
    stats.msgs++;
    const sql = data.toString('utf8', 5, data.length - 1);
    const secs = Number(/sleep\(([\d.]+)\)/.exec(sql)?.[1] ?? 0);
    if (secs) await new Promise((r) => setTimeout(r, secs * 1000));
    c.sendData(result('ok'));
    return true;
  };
}
let server, jsServer, port;
const sockets = new Set();
if (process.env.DRIVER === 'js' || process.env.DRIVER === 'native') {
  jsServer = net.createServer((s) => { stats.conns++; sockets.add(s); s.on('close', () => sockets.delete(s)); new PostgresConnection(s, { ...opts, driver: process.env.DRIVER }); });
  await new Promise((r) => jsServer.listen(0, '127.0.0.1', r)); port = jsServer.address().port;
} else { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
writeFileSync(process.env.PORTFILE ?? '/work/main/.scratch/r/srvport.txt', String(port));

import { readdirSync } from 'node:fs';
const mem = () => { global.gc?.(); const m = process.memoryUsage(); return JSON.stringify({ rssMB: +(m.rss / 1048576).toFixed(1), heapMB: +(m.heapUsed / 1048576).toFixed(1), extMB: +(m.external / 1048576).toFixed(1), fds: readdirSync('/proc/self/fd').length, count: server ? server.connectionCount : jsServer ? sockets.size : undefined, ...stats }); };
console.log('READY', port, mem());
readline.createInterface({ input: process.stdin }).on('line', async (l) => {
  if (l === 'mem') console.log('MEM', mem());
  if (l === 'close') { const t = Date.now(); if (server) await server.close({ gracePeriod: Number(process.env.GRACE ?? 2000) }); else { jsServer.close(); for (const s of sockets) s.destroy(); } console.log('CLOSED', Date.now() - t, 'ms', mem()); }
  if (l === 'exit') process.exit(0);
});
setTimeout(() => { console.log('LIFETIME OVER'); process.exit(9); }, Number(process.env.LIFE ?? 300000)).unref();

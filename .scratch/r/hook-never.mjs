// getScramSecret never settles; N clients send their SASLInitialResponse then leave.
// Departed clients' connections should go within ~5 s (README), not at authTimeout (60 s default).
import net from 'node:net';
import { createServer, PostgresConnection } from '/work/main/index.js';
import { startup, sleep, rss } from './lib.mjs';
import { saslInitial } from '/work/main/__test__/scram-client.mjs';
import { readdirSync } from 'node:fs';
const N = Number(process.env.N ?? 500);
let calls = 0;
const opts = { authMode: 'scramSha256', getScramSecret: () => { calls++; return new Promise(() => {}); } };
const sockets = new Set();
let server, jsServer, port;
if (process.env.DRIVER === 'server') { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
else { jsServer = net.createServer((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); new PostgresConnection(s, { ...opts, driver: process.env.DRIVER }); }); await new Promise((r) => jsServer.listen(0, '127.0.0.1', r)); port = jsServer.address().port; }
const count = () => (server ? server.connectionCount : sockets.size);
const fds = () => readdirSync('/proc/self/fd').length;
const before = { ...rss(), fds: fds() };
const clients = [];
for (let i = 0; i < N; i++) {
  const c = net.connect(port, '127.0.0.1'); c.on('error', () => {}); clients.push(c);
  c.on('connect', () => { c.write(startup({ user: 'u' + i })); setTimeout(() => c.write(saslInitial('SCRAM-SHA-256', Buffer.from(`n,,n=,r=abcdefghijklmnop${i}`))), 50); });
}
await sleep(2000);
console.log(process.env.DRIVER, 'hook calls', calls, 'count with clients connected', count());
for (const c of clients) c.end();
const t0 = Date.now();
while (count() > 0 && Date.now() - t0 < 15000) await sleep(250);
await sleep(Math.max(0, 7000 - (Date.now() - t0))); for (const c of clients) c.destroy(); await sleep(500);
console.log('count', count(), 'after', Date.now() - t0, 'ms since clients left; mem before', JSON.stringify(before), 'after', JSON.stringify({ ...rss(), fds: fds() }));
if (server) { const t = Date.now(); await server.close({ gracePeriod: 500 }); console.log('close took', Date.now() - t); } else jsServer.close();
process.exit(0);

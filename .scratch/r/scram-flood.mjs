// Many concurrent SCRAM logins (plain and TLS/-PLUS) against createServer and the js driver;
// RSS before/after, connectionCount after. CONC concurrent, TOTAL logins per target.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer, PostgresConnection, createScramSha256Secret } from '/work/main/index.js';
import { scramExchange } from '/work/main/__test__/scram-client.mjs';
import { rss } from './lib.mjs';
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const tlsOpts = { key: readFileSync(`${dir}/localhost-key.pem`), cert: readFileSync(`${dir}/localhost-cert.pem`) };
const ca = readFileSync(`${dir}/ca-cert.pem`);
const secret = createScramSha256Secret('pw');
const KIND = process.env.KIND ?? 'verifier';
const getScramSecret = ({ user }) => (KIND === 'password' ? { password: 'pw' } : user.startsWith('u') ? secret : null);
const CONC = Number(process.env.CONC ?? 200), TOTAL = Number(process.env.TOTAL ?? 2000);
const useTls = process.env.TLS === '1';
const opts = { authMode: 'scramSha256', getScramSecret, ...(useTls ? { tls: tlsOpts } : {}) };
let server, port, jsServer;
if (process.env.DRIVER === 'js') {
  jsServer = net.createServer((s) => new PostgresConnection(s, opts));
  await new Promise((r) => jsServer.listen(0, '127.0.0.1', r)); port = jsServer.address().port;
} else { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
async function batch(n) {
  let next = 0; const tally = {}; const t0 = Date.now();
  await Promise.all(Array.from({ length: CONC }, async () => {
    while (next < n) {
      const i = next++;
      const user = i % 10 === 9 ? `nobody${i}` : `u${KIND === 'password' ? i : ''}`;
      let k;
      try { const r = await scramExchange(port, { user, password: 'pw', tls: useTls ? { ca, servername: 'localhost' } : undefined, timeoutMs: 30000 }); k = r.outcome + (r.code ?? '') + (r.serverVerified ? '+v' : ''); }
      catch (e) { k = 'throw:' + e.message.slice(0, 40); }
      tally[k] = (tally[k] ?? 0) + 1;
    }
  }));
  return { ms: Date.now() - t0, tally };
}
console.log('warmup', JSON.stringify(await batch(Math.min(500, TOTAL))));
const before = rss();
const res = await batch(TOTAL);
await new Promise((r) => setTimeout(r, 1000));
const after = rss();
console.log(JSON.stringify({ driver: process.env.DRIVER ?? 'server', tls: useTls, KIND, ...res, before, after, count: server?.connectionCount }));
if (server) { await server.close({ gracePeriod: 0 }); console.log('after close count', server.connectionCount); } else jsServer.close();

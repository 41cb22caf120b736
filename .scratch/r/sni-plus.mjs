// SCRAM-SHA-256-PLUS where the certificate is chosen per SNI by an async tls callback, on each driver.
// The cbind data must be the hash of the certificate this connection got.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer, PostgresConnection, createScramSha256Secret } from '/work/main/index.js';
import { scramExchange } from '/work/main/__test__/scram-client.mjs';
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const r = (f) => readFileSync(`${dir}/${f}`); const ca = r('ca-cert.pem');
const secret = createScramSha256Secret('pw');
const opts = { authMode: 'scramSha256', getScramSecret: () => secret,
  async tls({ sniServerName }) { await new Promise((res) => setTimeout(res, 5)); const n = sniServerName?.startsWith('alpha') ? 'alpha' : 'beta'; return { key: r(`${n}-key.pem`), cert: r(`${n}-cert.pem`) }; } };
for (const driver of ['server', 'js', 'native']) {
  let port, server, js;
  if (driver === 'server') { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
  else { js = net.createServer((s) => new PostgresConnection(s, { ...opts, driver })); await new Promise((res) => js.listen(0, '127.0.0.1', res)); port = js.address().port; }
  const out = [];
  const jobs = [];
  for (let i = 0; i < 60; i++) { const name = i % 2 ? 'alpha.db.test' : 'beta.db.test'; jobs.push(scramExchange(port, { user: 'u', password: 'pw', tls: { ca, servername: name } }).then((x) => `${x.outcome}${x.code ?? ''}${x.serverVerified ? '+v' : ''}`, (e) => 'throw ' + e.message)); }
  const t = {}; for (const x of await Promise.all(jobs)) t[x] = (t[x] ?? 0) + 1;
  console.log(driver, JSON.stringify(t));
  if (server) await server.close({ gracePeriod: 0 }); else js.close();
}

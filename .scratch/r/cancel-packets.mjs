// Odd CancelRequest packets, against createServer / js / native, and PostgreSQL for reference.
// For each: what the sender sees, and whether onCancel of the target fired.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { createServer, PostgresConnection } from '/work/main/index.js';
import { startup, cancelPacket, parse, sleep } from './lib.mjs';
import { once } from 'node:events';
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const pgPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8'));
const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const uncaught = []; process.on('uncaughtException', (e) => uncaught.push(String(e))); 
const cases = {
  normal: (p, k) => cancelPacket(p, k),
  len12: (p, k) => Buffer.concat([i32(12), i32(80877102), i32(p)]),
  len20: (p, k) => Buffer.concat([i32(20), i32(80877102), i32(p), k, i32(0)]),
  len20key: (p, k) => Buffer.concat([i32(20), i32(80877102), i32(p), k, Buffer.alloc(4)]),
  len264: (p, k) => Buffer.concat([i32(264), i32(80877102), i32(p), k, Buffer.alloc(252)]),
  len300: (p, k) => Buffer.concat([i32(300), i32(80877102), i32(p), k, Buffer.alloc(288)]),
  trailingStartup: (p, k) => Buffer.concat([cancelPacket(p, k), startup({ user: 'x' })]),
  twoCancels: (p, k) => Buffer.concat([cancelPacket(p, Buffer.alloc(4)), cancelPacket(p, k)]),
  split: 'split',
  afterSslN: (p, k) => Buffer.concat([i32(8), i32(80877103), cancelPacket(p, k)]),
  afterGss: (p, k) => Buffer.concat([i32(8), i32(80877104)]),
  overTls: 'tls',
  halfThenClose: 'half',
};
async function target(driver, withTls) {
  let cancels = 0;
  const opts = { authMode: 'none', onCancel() { cancels++; } };
  if (withTls) opts.tls = { key: readFileSync(`${dir}/localhost-key.pem`), cert: readFileSync(`${dir}/localhost-cert.pem`) };
  let port, server, jsServer;
  if (driver === 'server') { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
  else { jsServer = net.createServer((s) => new PostgresConnection(s, { ...opts, driver })); await new Promise((r) => jsServer.listen(0, '127.0.0.1', r)); port = jsServer.address().port; }
  // live session (plaintext or TLS) to get a key
  let sock = net.connect(port, '127.0.0.1'); await once(sock, 'connect');
  if (withTls) { sock.write(Buffer.concat([i32(8), i32(80877103)])); await once(sock, 'data'); sock = tls.connect({ socket: sock, rejectUnauthorized: false, ALPNProtocols: ['postgresql'] }); await once(sock, 'secureConnect'); }
  let buf = Buffer.alloc(0); sock.on('data', (d) => { buf = Buffer.concat([buf, d]); }); sock.on('error', () => {});
  sock.write(startup({ user: 'u' })); await sleep(200);
  const k = parse(buf).find((m) => m.type === 'K');
  return { port, pid: k.body.readInt32BE(0), key: k.body.subarray(4, 8), cancels: () => cancels, close: async () => { sock.destroy(); if (server) await server.close({ gracePeriod: 0 }); else jsServer.close(); } };
}
async function send(port, kind0, pid, key) { let kind = kind0;
  let s = net.connect(port, '127.0.0.1'); s.on('error', () => {}); await once(s, 'connect');
  let got = Buffer.alloc(0); let closedAt = null; const t0 = Date.now();
  const onData = (d) => { got = Buffer.concat([got, d]); };
  s.on('data', onData); s.on('close', () => { closedAt = Date.now() - t0; });
  kind = typeof cases[kind0] === 'string' ? cases[kind0] : kind0;
  if (kind === 'split') { const p = cancelPacket(pid, key); for (const b of p) { s.write(Buffer.from([b])); await sleep(5); } }
  else if (kind === 'half') { s.write(cancelPacket(pid, key).subarray(0, 10)); await sleep(50); s.end(); }
  else if (kind === 'tls') {
    s.write(Buffer.concat([i32(8), i32(80877103)])); await sleep(100);
    if (got.toString() === 'S') { s.off('data', onData); got = Buffer.from('S'); const t = tls.connect({ socket: s, rejectUnauthorized: false, ALPNProtocols: ['postgresql'] }); t.on('error', () => {}); t.on('data', onData); await Promise.race([once(t, 'secureConnect'), sleep(2000)]); t.write(cancelPacket(pid, key)); t.on('close', () => { closedAt ??= Date.now() - t0; }); }
    else s.write(cancelPacket(pid, key));
  } else s.write(cases[kind](pid, key));
  for (let i = 0; i < 40 && closedAt === null; i++) await sleep(50);
  s.destroy();
  return `${got.length ? 'got ' + JSON.stringify(got.toString('latin1').replace(/[^\x20-\x7e]/g, '.').slice(0, 60)) : 'nothing'}, ${closedAt === null ? 'NOT closed in 2s' : 'closed'}`;
}
const ONLY = process.env.ONLY?.split(','); const TLSV = (process.env.TLSV ?? 'false,true').split(',').map((x) => x === 'true');
for (const withTls of TLSV) {
  console.log(`===== gateway tls=${withTls}`);
  const targets = {}; for (const d of ['server', 'js', 'native']) targets[d] = await target(d, withTls);
  for (const kind of Object.keys(cases).filter((k) => !ONLY || ONLY.includes(k))) {
    const row = [];
    for (const [d, t] of Object.entries(targets)) { const before = t.cancels(); const r = await send(t.port, kind, t.pid, t.key); await sleep(100); row.push(`${d}: ${r}, onCancel ${t.cancels() - before}`); }
    if (!withTls) row.push(`pg15: ${await send(pgPort, kind, 1, Buffer.alloc(4))}`);
    console.log(kind.padEnd(16), row.join(' | '));
  }
  for (const t of Object.values(targets)) await t.close();
}
console.log('uncaught', uncaught);

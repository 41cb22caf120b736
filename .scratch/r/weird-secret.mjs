// getScramSecret returning/throwing odd things, on createServer, js and native drivers.
import net from 'node:net';
import { createServer, PostgresConnection, createScramSha256Secret } from '/work/main/index.js';
import { scramExchange } from '/work/main/__test__/scram-client.mjs';
const warnings = [], uncaught = [];
process.on('warning', (w) => warnings.push(`${w.code}: ${w.message}`));
process.on('uncaughtException', (e) => uncaught.push(String(e)));
process.on('unhandledRejection', (e) => uncaught.push('UR ' + String(e)));
const good = createScramSha256Secret('postgres', { iterations: 4096 });
const parts = (() => { const [, rest] = good.split('SCRAM-SHA-256$'); const [is, keys] = rest.split('$'); const [i, s] = is.split(':'); const [st, sv] = keys.split(':'); return { iterations: +i, salt: s, storedKey: st, serverKey: sv }; })();
const cases = {
  good: () => good,
  goodParts: () => parts,
  goodPartsBytes: () => ({ iterations: parts.iterations, salt: Buffer.from(parts.salt, 'base64'), storedKey: new Uint8Array(Buffer.from(parts.storedKey, 'base64')), serverKey: Buffer.from(parts.serverKey, 'base64') }),
  password: () => ({ password: 'postgres' }),
  asyncGood: async () => good,
  throws: () => { throw new Error('db down: secret=hunter2'); },
  rejects: async () => { throw { severity: 'FATAL', code: '53300', message: 'too many' }; },
  rejectsNonError: () => Promise.reject(42),
  never: () => new Promise(() => {}),
  number: () => 42,
  boolean: () => true,
  symbol: () => Symbol('x'),
  bigint: () => 10n,
  fn: () => () => good,
  array: () => [good],
  buffer: () => Buffer.from(good),
  badVerifier: () => 'SCRAM-SHA-256$abc',
  md5Verifier: () => 'md5abcdef0123456789abcdef01234567',
  trailingNewline: () => good + '\n',
  zeroIter: () => good.replace('4096:', '0:'),
  hugeIterStr: () => good.replace('4096:', '99999999999999999999:'),
  negIterParts: () => ({ ...parts, iterations: -1 }),
  floatIterParts: () => ({ ...parts, iterations: 1.5 }),
  shortKey: () => ({ ...parts, storedKey: 'AAAA' }),
  emptySalt: () => ({ ...parts, salt: '' }),
  thenThrows: () => ({ then() { throw new Error('then throws'); } }),
  thenNever: () => ({ then() {} }),
  getterThrows: () => ({ get password() { throw new Error('getter'); } }),
  proxyThrows: () => new Proxy({}, { get() { throw new Error('proxy get'); }, has() { throw new Error('proxy has'); } }),
  passwordNumber: () => ({ password: 123 }),
  passwordEmpty: () => ({ password: '' }),
  passwordLoneSurrogate: () => ({ password: 'post\ud800gres' }),
  passwordNul: () => ({ password: 'post\0gres' }),
  passwordHuge: () => ({ password: 'x'.repeat(10_000_000) }),
  verifierHuge: () => 'SCRAM-SHA-256$4096:' + 'A'.repeat(20_000_000) + '$x:y',
  toStringObj: () => ({ toString: () => good }),
  nullProto: () => Object.assign(Object.create(null), parts),
  extraneous: () => ({ ...parts, password: 'other' }),
  bothPasswordAndParts: () => ({ password: 'postgres', iterations: 1 }),
  saltUtf8NotB64: () => ({ ...parts, salt: 'not base64 !!' }),
};
const hook = ({ user }) => cases[user]();
const common = { authMode: 'scramSha256', getScramSecret: hook, authTimeout: 1500 };
const server = createServer(common);
const { port: sPort } = await server.listen({ port: 0, host: '127.0.0.1' });
const mk = (driver) => new Promise((r) => { const s = net.createServer((sock) => new PostgresConnection(sock, { ...common, driver })); s.listen(0, '127.0.0.1', () => r(s)); });
const jsS = await mk('js'), nvS = await mk('native');
const ports = { server: sPort, js: jsS.address().port, native: nvS.address().port };
for (const name of Object.keys(cases)) {
  const row = [];
  for (const [drv, port] of Object.entries(ports)) {
    const t = Date.now();
    let r;
    try { r = await scramExchange(port, { user: name, password: name === 'passwordEmpty' ? '' : 'postgres', plus: false, timeoutMs: 4000 }); r = `${r.outcome}${r.code ? ' ' + r.code : ''}${r.message ? ' "' + r.message.slice(0, 60) + '"' : ''}`; }
    catch (e) { r = 'THROW ' + e.message; }
    row.push(`${drv}: ${r} (${Date.now() - t}ms)`);
  }
  console.log(name.padEnd(22), row.join(' | '));
}
await new Promise((r) => setTimeout(r, 200));
console.log('warnings', warnings);
console.log('uncaught', uncaught);
await server.close({ gracePeriod: 0 }); jsS.close(); nvS.close();
console.log('connectionCount after close', server.connectionCount);

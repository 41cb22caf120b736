// onCancel that throws / rejects / never settles / calls detach(), proxy(), sendError(),
// socket.end(), sendData() on the cancelled connection, while it is idle or while its onMessage
// hook is running. Then: does the target session still answer a query? Any crash?
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer, PostgresConnection } from '/work/main/index.js';
import { startup, cancelPacket, parse, sleep, result } from './lib.mjs';
import { once } from 'node:events';
const pgPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8'));
const uncaught = []; process.on('uncaughtException', (e) => uncaught.push(String(e).slice(0, 120))); process.on('unhandledRejection', (e) => uncaught.push('UR ' + String(e).slice(0, 120)));
const behaviours = {
  throws: () => { throw new Error('boom'); },
  rejects: async () => { throw new Error('boom'); },
  never: () => new Promise(() => {}),
  thenThrows: () => ({ then() { throw new Error('x'); } }),
  detach: (s, c) => { const d = c.detach(); d.on?.('error', () => {}); d.end?.('bye'); },
  proxy: (s, c) => { c.proxy({ host: '127.0.0.1', port: pgPort }); },
  sendError: (s, c) => { c.sendError({ severity: 'ERROR', code: '57014', message: 'canceled' }); c.sendReadyForQuery(); },
  sendGarbage: (s, c) => { c.sendData(Buffer.from('garbage')); },
  socketEnd: (s, c) => { c.socket.end(); },
  socketDestroy: (s, c) => { c.socket.destroy(); },
};
async function one(driver, name, busy) {
  const opts = {
    authMode: 'none', onCancel: behaviours[name],
    async onMessage(d, s, c) { if (!s.isAuthenticated || d[0] !== 0x51) return false; const sql = d.toString('utf8', 5, d.length - 1); if (sql.includes('sleep')) await sleep(800); c.sendData(result('ok')); return true; },
  };
  let port, server, jsServer;
  if (driver === 'server') { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
  else { jsServer = net.createServer((s) => new PostgresConnection(s, { ...opts, driver })); await new Promise((r) => jsServer.listen(0, '127.0.0.1', r)); port = jsServer.address().port; }
  const c = net.connect(port, '127.0.0.1'); await once(c, 'connect'); c.on('error', () => {});
  let buf = Buffer.alloc(0); let closed = false; c.on('data', (d) => { buf = Buffer.concat([buf, d]); }); c.on('close', () => { closed = true; });
  c.write(startup({ user: 'u' })); await sleep(150);
  const k = parse(buf).find((m) => m.type === 'K'); const pid = k.body.readInt32BE(0), secret = k.body.subarray(4, 8);
  buf = Buffer.alloc(0);
  const q = (sql) => { const b = Buffer.from(sql + '\0'); const h = Buffer.alloc(5); h[0] = 0x51; h.writeInt32BE(b.length + 4, 1); c.write(Buffer.concat([h, b])); };
  if (busy) q('select sleep'); await sleep(100);
  const s = net.connect(port, '127.0.0.1'); s.on('error', () => {}); await once(s, 'connect'); s.write(cancelPacket(pid, secret)); await Promise.race([once(s, 'close'), sleep(2000)]);
  await sleep(busy ? 1000 : 300);
  const afterCancel = parse(buf).map((m) => m.type + (m.type === 'E' ? `(${m.body.toString().split('\0').find((f) => f[0] === 'C')})` : '')).join('') + (buf.length && !parse(buf).length ? `[raw:${buf.toString().slice(0, 20)}]` : '');
  buf = Buffer.alloc(0);
  if (!closed) { q('select 1'); await sleep(400); }
  const after = closed ? 'client closed' : (parse(buf).map((m) => m.type).join('') || `[raw ${buf.length}B: ${buf.subarray(0, 12).toString('hex')}]`);
  c.destroy();
  await sleep(100);
  const cnt = server?.connectionCount;
  if (server) await server.close({ gracePeriod: 200 }); else jsServer.close();
  return `${afterCancel || '-'} / next query: ${after}${cnt !== undefined ? ' / count ' + cnt : ''}`;
}
for (const name of Object.keys(behaviours)) for (const busy of [false, true]) {
  const row = [];
  for (const d of ['server', 'js', 'native']) row.push(`${d}: ${await one(d, name, busy)}`);
  console.log(`${name}${busy ? '(busy)' : ''}`.padEnd(20), row.join(' | '));
}
console.log('uncaught', uncaught);

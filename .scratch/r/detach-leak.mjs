// detach() after auth, the detached stream is never read nor destroyed; the client leaves.
// Is the connection released (connectionCount, cancel key freed, _connections map)?
// N connections per driver.
import net from 'node:net';
import { createServer, PostgresConnection } from '/work/main/index.js';
import { startup, cancelPacket, parse, sleep, rss } from './lib.mjs';
import { once } from 'node:events';
const N = Number(process.env.N ?? 200);
async function runFor(driver, consume) {
  let cancels = 0; const streams = [];
  const opts = {
    authMode: 'none',
    onCancel() { cancels++; },
    onMessage(data, state, connection) {
      if (!state.isAuthenticated || data[0] !== 0x51) return false;
      const d = connection.detach(); streams.push(d);
      if (consume === 'error') d.on('error', () => {});
      if (consume === 'read') { d.on('error', () => {}); d.resume(); }
      return true;
    },
  };
  let port, server, jsServer;
  if (driver === 'server') { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
  else { jsServer = net.createServer((s) => new PostgresConnection(s, { ...opts, driver })); await new Promise((r) => jsServer.listen(0, '127.0.0.1', r)); port = jsServer.address().port; }
  const keys = [];
  for (let i = 0; i < N; i++) {
    const c = net.connect(port, '127.0.0.1'); await once(c, 'connect'); c.on('error', () => {});
    let buf = Buffer.alloc(0); c.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    c.write(startup({ user: 'u' }));
    for (let t = 0; t < 100 && !parse(buf).some((m) => m.type === 'Z'); t++) await sleep(5);
    const k = parse(buf).find((m) => m.type === 'K'); keys.push([k.body.readInt32BE(0), k.body.subarray(4, 8)]);
    c.write(Buffer.from([0x51, 0, 0, 0, 13, ...Buffer.from('select 1\0')]));
    await sleep(5);
    if (process.env.RESET) c.resetAndDestroy(); else c.end();
  }
  await sleep(3000);
  for (const [pid, secret] of keys) { const s = net.connect(port, '127.0.0.1'); s.on('error', () => {}); await once(s, 'connect'); s.write(cancelPacket(pid, secret)); await Promise.race([once(s, 'close'), sleep(2000)]); }
  await sleep(500);
  const destroyed = streams.filter((s) => s.destroyed).length;
  console.log(driver.padEnd(7), consume.padEnd(5), `detached=${streams.length} destroyedStreams=${destroyed} cancelsDeliveredToGoneClients=${cancels}`, 'count', server?.connectionCount, 'mapSize', server?._connections.size);
  if (server) { const t = Date.now(); await server.close({ gracePeriod: 0 }); const m0 = server._connections.size; await sleep(1500); console.log('   close took', Date.now() - t, 'ms; count', server.connectionCount, 'mapSize', m0, 'then', server._connections.size, [...server._connections.values()].map((c) => c._closed)); } else jsServer.close();
}
for (const d of ['server', 'native', 'js']) for (const c of ['none', 'error', 'read']) await runFor(d, c);

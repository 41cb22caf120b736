// detach() after authentication, then cancel with the gateway key (should reach onCancel),
// then close the detached stream and cancel again (should not). Each driver.
import net from 'node:net';
import { createServer, PostgresConnection } from '/work/main/index.js';
import { startup, cancelPacket, parse, sleep } from './lib.mjs';
import { once } from 'node:events';
const uncaught = []; process.on('uncaughtException', (e) => uncaught.push(String(e)));
async function runFor(driver) {
  const log = []; let detached = null;
  const opts = {
    authMode: 'none',
    onCancel(state, connection) { log.push(`onCancel authenticated=${state.isAuthenticated}`); },
    onMessage(data, state, connection) {
      if (!state.isAuthenticated || data[0] !== 0x51) return false;
      detached = connection.detach();
      detached.on('error', () => {});
      detached.on('data', (d) => log.push(`detached got ${d.length}`));
      return true;
    },
  };
  let port, server, jsServer;
  if (driver === 'server') { server = createServer(opts); ({ port } = await server.listen({ port: 0, host: '127.0.0.1' })); }
  else { jsServer = net.createServer((s) => new PostgresConnection(s, { ...opts, driver })); await new Promise((r) => jsServer.listen(0, '127.0.0.1', r)); port = jsServer.address().port; }
  const c = net.connect(port, '127.0.0.1'); await once(c, 'connect'); c.on('error', () => {});
  let buf = Buffer.alloc(0); c.on('data', (d) => { buf = Buffer.concat([buf, d]); });
  c.write(startup({ user: 'u' })); await sleep(200);
  const k = parse(buf).find((m) => m.type === 'K'); const pid = k.body.readInt32BE(0), secret = k.body.subarray(4, 8);
  c.write(Buffer.from([0x51, 0, 0, 0, 13, ...Buffer.from('select 1\0')])); await sleep(200);
  log.push(`detached=${!!detached}`);
  const cancel = async () => { const s = net.connect(port, '127.0.0.1'); s.on('error', () => {}); await once(s, 'connect'); s.write(cancelPacket(pid, secret)); await Promise.race([once(s, 'close'), sleep(3000)]); s.destroy(); await sleep(200); };
  await cancel(); log.push('--- after cancel 1');
  c.write('hello'); await sleep(200);
  detached.destroy(); await sleep(300);
  await cancel(); log.push('--- after cancel 2 (detached destroyed)');
  c.destroy(); await sleep(300);
  await cancel(); log.push('--- after cancel 3 (client closed)');
  console.log(driver, JSON.stringify(log), 'count', server?.connectionCount);
  if (server) await server.close({ gracePeriod: 0 }); else jsServer.close();
}
for (const d of ['server', 'js', 'native']) await runFor(d);
console.log('uncaught', uncaught);

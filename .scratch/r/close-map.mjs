// server.close() with detached-but-unread streams: does _connections empty, and when?
import net from 'node:net';
import { createServer } from '/work/main/index.js';
import { startup, parse, sleep } from './lib.mjs';
import { once } from 'node:events';
const N = Number(process.env.N ?? 100);
for (let round = 0; round < Number(process.env.ROUNDS ?? 5); round++) {
  const streams = [];
  const server = createServer({ authMode: 'none', onCancel() {}, onMessage(data, state, c) {
    if (!state.isAuthenticated || data[0] !== 0x51) return false; const d = c.detach(); d.on('error', () => {}); streams.push(d); return true; } });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  for (let i = 0; i < N; i++) {
    const c = net.connect(port, '127.0.0.1'); await once(c, 'connect'); c.on('error', () => {});
    let buf = Buffer.alloc(0); c.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    c.write(startup({ user: 'u' })); for (let t = 0; t < 100 && !parse(buf).some((m) => m.type === 'Z'); t++) await sleep(5);
    c.write(Buffer.from([0x51, 0, 0, 0, 13, ...Buffer.from('select 1\0')])); await sleep(2); c.end();
  }
  await sleep(500);
  await server.close({ gracePeriod: 0 });
  const a = server._connections.size; await sleep(1000);
  console.log(`round ${round}: count ${server.connectionCount}, map right after close ${a}, 1s later ${server._connections.size}, destroyed streams ${streams.filter((s) => s.destroyed).length}/${streams.length}`);
}

// README "onCancel" snippet, filled in: onMessage starts work with an AbortController per connection.
// DRIVER=server (createServer) | js (net.createServer + new PostgresConnection)
import net from 'node:net';
import { createServer, PostgresConnection } from '/work/main/index.js';
import { result } from './lib.mjs';
const events = [];
const running = new Map(); // connection -> AbortController of its current query
const options = {
  authMode: 'none',
  onCancel(state, connection) {
    events.push(`onCancel user=${state.clientInfo?.parameters.user} hasCtl=${running.has(connection)}`);
    running.get(connection)?.abort();
  },
  async onMessage(data, state, connection) {
    if (!state.isAuthenticated || data[0] !== 0x51) return false;
    const sql = data.toString('utf8', 5, data.length - 1);
    const ctl = new AbortController();
    running.set(connection, ctl);
    const secs = Number(/sleep\((\d+)\)/.exec(sql)?.[1] ?? 0);
    try {
      await new Promise((resolve, reject) => {
        const t = setTimeout(resolve, secs * 1000);
        ctl.signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')); });
      });
      connection.sendData(result(`slept ${secs}`));
    } catch {
      throw { severity: 'ERROR', code: '57014', message: 'canceling statement due to user request' };
    } finally { running.delete(connection); }
    return true;
  },
};
let server, port;
if (process.env.DRIVER === 'js') {
  server = net.createServer((s) => { new PostgresConnection(s, options); });
  await new Promise((r) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', r));
  port = server.address().port;
} else {
  server = createServer(options);
  ({ port } = await server.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' }));
}
console.log('port', port);
process.on('SIGTERM', () => { console.log('events', JSON.stringify(events)); process.exit(0); });
setTimeout(() => { console.log('events', JSON.stringify(events)); process.exit(0); }, Number(process.env.LIFE ?? 20000));

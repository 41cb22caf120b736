// README: "A detach() proxy" + the detach() example of the methods table, literally combined.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer, PostgresConnection } from '/work/main/index.js';
const upstreamPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8')); const upstreamHost = '127.0.0.1';
const log = [];
process.on('uncaughtException', (e) => { log.push('uncaught ' + e.message); });
const options = {
  authMode: 'none',
  onMessage(data, state, connection) {
    // CancelRequest: length 16, code 80877102, then the upstream's process id and secret.
    if (!state.hasStarted && data.length === 16 && data.readInt32BE(4) === 80877102) {
      log.push('cancel seen');
      net.connect(upstreamPort, upstreamHost).on('error', () => {}).end(data);
      try { connection.end(); } catch (e) { log.push('connection.end threw: ' + e.message); if (process.env.RETHROW) throw e; }
      return true;
    }
    if (state.hasStarted) return false;
    const client = connection.detach();
    const upstream = net.connect({ host: upstreamHost, port: upstreamPort });
    upstream.write(data); // replay the startup packet
    client.pipe(upstream).pipe(client);
    return true;
  },
};
let server, port;
if (process.env.DRIVER === 'js' || process.env.DRIVER === 'native') {
  server = net.createServer((s) => { new PostgresConnection(s, { ...options, driver: process.env.DRIVER }); });
  await new Promise((r) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', r)); port = server.address().port;
} else {
  server = createServer(options); ({ port } = await server.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' }));
}
console.log('port', port);
const done = () => { console.log('log', JSON.stringify(log), 'count', server.connectionCount); process.exit(0); };
setTimeout(done, Number(process.env.LIFE ?? 20000));

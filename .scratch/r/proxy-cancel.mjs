// proxy() to the real PostgreSQL; MODE=startup (onStartup proxy startup:true) | tls (onTlsUpgrade proxy); DRIVER=server|js|native
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer, PostgresConnection } from '/work/main/index.js';
const pgPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8'));
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const events = [];
const mode = process.env.MODE ?? 'startup';
const options = {
  authMode: 'none',
  onCancel(state) { events.push(`onCancel ${state.clientInfo?.parameters.user}`); },
};
if (mode === 'startup') {
  options.onStartup = (state, connection) => { connection.proxy({ host: '127.0.0.1', port: pgPort, startup: true }); return true; };
} else {
  options.tls = { key: readFileSync(`${dir}/localhost-key.pem`), cert: readFileSync(`${dir}/localhost-cert.pem`) };
  options.onTlsUpgrade = (state, connection) => { connection.proxy({ host: '127.0.0.1', port: pgPort }); };
}
let server, port;
if (process.env.DRIVER === 'js' || process.env.DRIVER === 'native') {
  const driver = process.env.DRIVER;
  server = net.createServer((s) => { new PostgresConnection(s, { ...options, driver }); });
  await new Promise((r) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', r));
  port = server.address().port;
} else {
  server = createServer(options);
  ({ port } = await server.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' }));
}
console.log('port', port);
const done = () => { console.log('events', JSON.stringify(events), 'count', server.connectionCount); process.exit(0); };
process.on('SIGTERM', done);
setTimeout(done, Number(process.env.LIFE ?? 20000));

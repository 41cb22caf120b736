// Benchmark server: a reverse proxy to a real PostgreSQL, written once against the pg-gateway
// API: detach() + pipe (both modules), or pg-gateway-native's connection.proxy().
//   node proxy.mjs <module> <port> <upstreamPort> <detach|native|native-listener> [certDir]
// With certDir, TLS is terminated (the README's SNI reverse proxy) and the route is chosen in
// onTlsUpgrade; without, the route is chosen in onStartup and the startup replayed.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [modulePath, port, upstreamPort, kind, certDir] = process.argv.slice(2);
const gateway = require(modulePath);
const upstream = { host: '127.0.0.1', port: Number(upstreamPort) };
const tls = certDir
  ? { key: readFileSync(path.join(certDir, 'server-key.pem')), cert: readFileSync(path.join(certDir, 'server-cert.pem')) }
  : undefined;

function pipe(connection, replayStartup) {
  const proxySocket = net.connect(upstream);
  proxySocket.setNoDelay(true);
  if (replayStartup) proxySocket.write(gateway.createStartupMessage(connection.state.clientInfo));
  const socket = connection.detach();
  proxySocket.pipe(socket);
  socket.pipe(proxySocket);
  proxySocket.on('end', () => socket.end());
  socket.on('end', () => proxySocket.end());
  proxySocket.on('error', (err) => socket.destroy(err));
  socket.on('error', (err) => proxySocket.destroy(err));
  proxySocket.on('close', () => socket.destroy());
  socket.on('close', () => proxySocket.destroy());
}

function options(getConnection) {
  const route = (connection, replayStartup) => {
    if (kind === 'detach') pipe(connection, replayStartup);
    else connection.proxy({ ...upstream, startup: replayStartup });
  };
  return tls
    ? { tls, onTlsUpgrade(state, connection) { route(connection ?? getConnection(), false); } }
    : { authMode: 'none', onStartup(state, connection) { route(connection ?? getConnection(), true); return true; } };
}

if (kind === 'native-listener') {
  await gateway.createServer(options()).listen({ port: Number(port), host: '127.0.0.1' });
  console.log('ready');
} else {
  net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const connection = new gateway.PostgresConnection(socket, { ...options(() => connection), ...(kind === 'native' ? { driver: 'native' } : {}) });
  }).listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

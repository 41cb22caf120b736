// Benchmark server for the memory rows' two reference points (not a pg-gateway server):
//   node idle.mjs bare <port>            a node:net (or node:tls) server that only holds its
//                                        sockets: the floor under any server built on Node's
//                                        sockets, pg-gateway 0.2.4 and our js driver included
//   node idle.mjs no-hooks <port> <module>   createServer() with no JS hook at all: what the
//                                        Rust side costs on its own
//   CERT_DIR=dir: TLS with dir/server-key.pem and dir/server-cert.pem
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [kind, port, modulePath] = process.argv.slice(2);
const certDir = process.env.CERT_DIR;
const tlsOptions = certDir
  ? { key: readFileSync(path.join(certDir, 'server-key.pem')), cert: readFileSync(path.join(certDir, 'server-cert.pem')) }
  : undefined;

if (kind === 'bare') {
  const held = new Set();
  const accept = (socket) => {
    held.add(socket);
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => held.delete(socket));
  };
  const server = tlsOptions ? tls.createServer(tlsOptions, accept) : net.createServer(accept);
  server.listen(Number(port), '127.0.0.1', () => console.log('ready'));
} else if (kind === 'no-hooks') {
  const gateway = createRequire(import.meta.url)(modulePath);
  await gateway.createServer({ authMode: 'none', ...(tlsOptions ? { tls: tlsOptions } : {}) }).listen({ port: Number(port), host: '127.0.0.1' });
  console.log('ready');
} else {
  console.error(`unknown kind '${kind}'`);
  process.exit(2);
}

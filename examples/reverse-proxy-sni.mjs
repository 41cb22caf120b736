#!/usr/bin/env node
// The pg-gateway README's "Reverse Proxy using SNI" example, unchanged apart from the import and
// three settings read from the environment (with the README's values as defaults), so that a
// test can run it: TLS is terminated here and each client is piped to the PostgreSQL server its
// SNI name points at.
//
//   PORT (5432)  UPSTREAM_PORT (54321)  CERT_DIR (.: server-key.pem, server-cert.pem, ca-cert.pem)
//   psql "host=12345.db.example.com hostaddr=127.0.0.1 port=5432 user=postgres sslmode=require"

import { readFile } from 'node:fs/promises';
import net, { connect, Socket } from 'node:net';
import path from 'node:path';
import { PostgresConnection } from 'pg-gateway-native';

const certDir = process.env.CERT_DIR ?? '.';
const port = Number(process.env.PORT ?? 5432);
const upstreamPort = Number(process.env.UPSTREAM_PORT ?? 54321);

const tls = async ({ sniServerName }) => {
  // Optionally serve different certs based on `sniServerName`
  // In this example we'll use a single wildcard cert for all servers (ie. *.db.example.com)
  return {
    key: await readFile(path.join(certDir, 'server-key.pem')),
    cert: await readFile(path.join(certDir, 'server-cert.pem')),
    ca: await readFile(path.join(certDir, 'ca-cert.pem')),
  };
};

// Looks up the host/port based on the ID
async function getServerById(id) {
  // In this example we'll hardcode to localhost port 54321
  return {
    host: 'localhost',
    port: upstreamPort,
  };
}

const server = net.createServer((socket) => {
  const connection = new PostgresConnection(socket, {
    tls,
    // This hook occurs before startup messages are received from the client,
    // so is a good place to establish proxy connections
    async onTlsUpgrade({ tlsInfo }) {
      if (!tlsInfo) {
        connection.sendError({
          severity: 'FATAL',
          code: '08000',
          message: `ssl connection required`,
        });
        connection.socket.end();
        return;
      }

      if (!tlsInfo.sniServerName) {
        connection.sendError({
          severity: 'FATAL',
          code: '08000',
          message: `ssl sni extension required`,
        });
        connection.socket.end();
        return;
      }

      // In this example the left-most subdomain contains the server ID
      // ie. 12345.db.example.com -> 12345
      const [serverId] = tlsInfo.sniServerName.split('.');

      // Lookup the server host/port based on ID
      const serverInfo = await getServerById(serverId);

      // Establish a TCP connection to the downstream server using the above host/port
      const proxySocket = connect(serverInfo);

      // Detach from the `PostgresConnection` to prevent further buffering/processing
      const socket = connection.detach();

      // Pipe data directly between sockets
      proxySocket.pipe(socket);
      socket.pipe(proxySocket);

      proxySocket.on('end', () => socket.end());
      socket.on('end', () => proxySocket.end());

      proxySocket.on('error', (err) => socket.destroy(err));
      socket.on('error', (err) => proxySocket.destroy(err));

      proxySocket.on('close', () => socket.destroy());
      socket.on('close', () => proxySocket.destroy());
    },
  });

  socket.on('end', () => {
    console.log('Client disconnected');
  });
});

server.listen(port, () => {
  console.log(`Server listening on port ${port}`);
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});

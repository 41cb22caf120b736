// Benchmark server: the pg-gateway README's PGlite example on current PGlite (execProtocolRaw,
// one client at a time), written once against the pg-gateway API.
//   node pglite.mjs <module> <port>
import net from 'node:net';
import { createRequire } from 'node:module';
import { PGlite } from '@electric-sql/pglite';

const require = createRequire(import.meta.url);
const [modulePath, port] = process.argv.slice(2);
const { PostgresConnection } = require(modulePath);

const db = new PGlite();
await db.waitReady;
await db.exec('create table bench (id int primary key, v text); insert into bench select g, md5(g::text) from generate_series(1, 1000) g');

net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  const connection = new PostgresConnection(socket, {
    authMode: 'none',
    async onMessage(data, { isAuthenticated }) {
      if (!isAuthenticated) return false;
      if (data[0] === 0x58) return false;
      connection.sendData(await db.runExclusive(() => db.execProtocolRaw(new Uint8Array(data))));
      return true;
    },
  });
}).listen(Number(port), '127.0.0.1', () => console.log('ready'));

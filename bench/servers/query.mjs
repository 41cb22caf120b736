// Benchmark server: the fixed-result server of fixed.mjs written with onQuery: md5
// authentication, then every statement answers one row (`?column?` int4 = 1).
//   node query.mjs <module> <port> [listener]
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [modulePath, port, entry] = process.argv.slice(2);
const gateway = require(modulePath);

const RESULT = { fields: [{ name: '?column?', type: 'int4' }], rows: [[1]] };
const options = () => ({
  authMode: 'md5Password',
  async validateCredentials(credentials) {
    return credentials.hash === await gateway.hashMd5Password(credentials.user, 'bench', credentials.salt);
  },
  onQuery: () => RESULT,
});

if (entry === 'listener') {
  await gateway.createServer(options()).listen({ port: Number(port), host: '127.0.0.1' });
  console.log('ready');
} else {
  net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    new gateway.PostgresConnection(socket, options());
  }).listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

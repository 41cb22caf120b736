// Benchmark server: md5 authentication, then every query answered from onMessage with a
// hand-built row. Written once against the pg-gateway API, so both modules run the same code.
//   node fixed.mjs <module> <port> [listener]   (listener: pg-gateway-native's createServer)
//   CERT_DIR=dir: TLS with dir/server-key.pem and dir/server-cert.pem
//   AUTH=scram: authMode 'scramSha256' with a verifier for password 'bench' (ours only)
//   STATS=off: createServer({ stats: false }) (ours, listener only)
import net from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [modulePath, port, entry] = process.argv.slice(2);
const gateway = require(modulePath);

function message(type, body) {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}
const int16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const ROW = message('D', Buffer.concat([int16(1), int32(1), Buffer.from('1')]));
const DESCRIPTION = message('T', Buffer.concat([int16(1), Buffer.from('?column?\0'), int32(0), int16(0), int32(23), int16(4), int32(-1), int16(0)]));
const COMPLETE = message('C', Buffer.from('SELECT 1\0'));
const READY = message('Z', Buffer.from('I'));
const SIMPLE_REPLY = Buffer.concat([DESCRIPTION, ROW, COMPLETE, READY]);
const REPLIES = {
  P: message('1', Buffer.alloc(0)),
  B: message('2', Buffer.alloc(0)),
  D: DESCRIPTION,
  E: Buffer.concat([ROW, COMPLETE]),
  S: READY,
  C: message('3', Buffer.alloc(0)),
};

// With CERT_DIR, clients must use TLS (the TLS rows of the benchmark).
const certDir = process.env.CERT_DIR;
const tls = certDir
  ? { key: readFileSync(path.join(certDir, 'server-key.pem')), cert: readFileSync(path.join(certDir, 'server-cert.pem')) }
  : undefined;

const scram = process.env.AUTH === 'scram' ? gateway.createScramSha256Secret('bench') : null;
const auth = scram
  ? { authMode: 'scramSha256', getScramSecret: ({ user }) => (user === 'bench' ? scram : null) }
  : {
    authMode: 'md5Password',
    async validateCredentials(credentials) {
      return credentials.hash === await gateway.hashMd5Password(credentials.user, 'bench', credentials.salt);
    },
  };

function options(getConnection) {
  return {
    ...(tls ? { tls } : {}),
    ...auth,
    onMessage(data, state, connection) {
      if (!state.isAuthenticated) return false;
      const conn = connection ?? getConnection();
      const type = String.fromCharCode(data[0]);
      if (type === 'Q') { conn.sendData(SIMPLE_REPLY); return true; }
      if (type === 'H') return true;
      const reply = REPLIES[type];
      if (!reply) return false;
      conn.sendData(reply);
      return true;
    },
  };
}

if (entry === 'listener') {
  const stats = process.env.STATS === 'off' ? { stats: false } : {};
  await gateway.createServer({ ...options(), ...stats }).listen({ port: Number(port), host: '127.0.0.1' });
  console.log('ready');
} else {
  net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const connection = new gateway.PostgresConnection(socket, options(() => connection));
  }).listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

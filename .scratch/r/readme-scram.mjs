// README "SCRAM-SHA-256" snippet, literally, with key/cert defined and port from env.
import { createServer, createScramSha256Secret } from '/work/main/index.js';
import { readFileSync } from 'node:fs';
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const key = readFileSync(`${dir}/localhost-key.pem`), cert = readFileSync(`${dir}/localhost-cert.pem`);
const useTls = process.env.TLS !== '0';

// Once, when a user is created; store the verifier, never the password.
const users = new Map([['alice', createScramSha256Secret('s3cret')]]);

const server = createServer({
  authMode: 'scramSha256',
  getScramSecret: ({ user }) => users.get(user),
  ...(useTls ? { tls: { key, cert } } : {}), // optional: adds SCRAM-SHA-256-PLUS (channel binding)
});
const addr = await server.listen({ port: Number(process.env.PORT ?? 5432) });
console.log('listening', JSON.stringify(addr), users.get('alice'));
process.on('SIGTERM', async () => { await server.close({ gracePeriod: 100 }); console.log('closed, count', server.connectionCount); process.exit(0); });
setTimeout(() => process.exit(3), Number(process.env.LIFE ?? 60000)).unref();

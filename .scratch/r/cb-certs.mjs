// SCRAM-SHA-256-PLUS with certificates whose signature hash is not SHA-256 (tls-server-end-point
// must then use SHA-512 / SHA-384), Ed25519, and SNI-chosen certificates. Server: createServer.
// Prints port; psql is run from the shell.
import { readFileSync } from 'node:fs';
import { createServer, createScramSha256Secret } from '/work/main/index.js';
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const r = (f) => readFileSync(`${dir}/${f}`);
const which = process.env.CERT;
const secret = createScramSha256Secret('pw');
const tls = which === 'sni'
  ? ({ sniServerName }) => (sniServerName === 'alpha.db.test' ? { key: r('alpha-key.pem'), cert: r('alpha-cert.pem') } : { key: r('beta-key.pem'), cert: r('beta-cert.pem') })
  : { key: r(`${which}-key.pem`), cert: r(`${which}-cert.pem`) };
const server = createServer({ authMode: 'scramSha256', getScramSecret: () => secret, tls, onMessage(d, s, c) { if (!s.isAuthenticated || d[0] !== 0x51) return false; c.sendData(Buffer.from('5a0000000549', 'hex')); return true; } });
const { port } = await server.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
console.log('port', port);
setTimeout(() => process.exit(0), Number(process.env.LIFE ?? 8000));

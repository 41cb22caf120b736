// Test certificates, made fresh per run with openssl: a CA, server certificates for two SNI
// names and for localhost, client certificates from the CA and from an untrusted one.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

function ca(dir, name) {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
    '-keyout', `${name}-key.pem`, '-out', `${name}-cert.pem`], dir);
}

/**
 * A certificate for `cn` (with `dnsNames` as subjectAltName) signed by `caName`; `v1`: without
 * extensions, which OpenSSL 3.0 makes X.509 v1.
 */
function leaf(dir, caName, file, cn, dnsNames = [], { v1 = false } = {}) {
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${file}-key.pem`, '-out', `${file}.csr`], dir);
  const args = ['x509', '-req', '-in', `${file}.csr`, '-CA', `${caName}-cert.pem`, '-CAkey', `${caName}-key.pem`,
    '-CAcreateserial', '-days', '2', '-out', `${file}-cert.pem`];
  // X.509 v3 (webpki, like most modern verifiers, refuses v1 certificates).
  const extensions = dnsNames.length
    ? `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`
    : 'extendedKeyUsage=clientAuth\n';
  writeFileSync(path.join(dir, `${file}.ext`), `basicConstraints=CA:FALSE\n${extensions}`);
  if (!v1) args.push('-extfile', `${file}.ext`);
  openssl(args, dir);
  chmodSync(path.join(dir, `${file}-key.pem`), 0o600);
}

export function makeCertificates() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pggn-certs-'));
  ca(dir, 'ca');
  ca(dir, 'rogue-ca');
  leaf(dir, 'ca', 'localhost', 'localhost', ['localhost']);
  leaf(dir, 'ca', 'alpha', 'alpha.db.test', ['alpha.db.test']);
  leaf(dir, 'ca', 'beta', 'beta.db.test', ['beta.db.test']);
  leaf(dir, 'ca', 'wildcard', '*.db.example.com', ['*.db.example.com']);
  leaf(dir, 'ca', 'alice', 'alice');
  leaf(dir, 'rogue-ca', 'rogue-alice', 'alice');
  leaf(dir, 'ca', 'alice-v1', 'alice', [], { v1: true });
  openssl(['pkey', '-in', 'localhost-key.pem', '-aes256', '-passout', 'pass:open sesame', '-out', 'localhost-key-encrypted.pem'], dir);
  const read = (name) => readFileSync(path.join(dir, name));
  const pair = (name) => ({ key: read(`${name}-key.pem`), cert: read(`${name}-cert.pem`) });
  return {
    dir,
    file: (name) => path.join(dir, name),
    ca: read('ca-cert.pem'),
    localhost: pair('localhost'),
    alpha: pair('alpha'),
    beta: pair('beta'),
    wildcard: pair('wildcard'),
    encryptedKey: read('localhost-key-encrypted.pem'),
  };
}

// TLS with real clients: psql (libpq) with sslmode=require and verify-full, node-postgres with a
// servername, SNI choosing certificates, certificate authentication, and the attacks PostgreSQL
// refuses (plaintext startup, bytes injected after SSLRequest, garbage after 'S').
import test from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import pg from 'pg';
import { makeCertificates } from './certs.mjs';
import {
  MODES, errorFields, frontend, gateway, oneRowResult, parseMessages, psql, rawClient, startServer,
} from './helpers.mjs';

const certs = makeCertificates();
const SSL_REQUEST = 80877103;

/** Answers every query with what the gateway knows about the connection's TLS. */
function tlsFacts(extra = {}) {
  return () => ({
    authMode: 'none',
    onMessage(data, state, connection) {
      if (!state.isAuthenticated || data[0] !== 0x51) return false;
      const info = state.tlsInfo;
      connection.sendData(oneRowResult(['sni', 'alpn', 'user'], [
        info?.sniServerName ?? '-', info?.alpnProtocol ?? '-', state.clientInfo.parameters.user,
      ]));
      return true;
    },
    ...extra,
  });
}

/** libpq connection options for TLS to `host` (resolved to 127.0.0.1, so SNI is `host`). */
function tlsEnv(host, sslmode, extra = {}) {
  return { PGHOSTADDR: '127.0.0.1', PGSSLMODE: sslmode, PGSSLROOTCERT: certs.file('ca-cert.pem'), ...extra };
}

function psqlTls(port, args, { host = 'localhost', sslmode = 'verify-full', user = 'postgres', password, env = {} } = {}) {
  return psql(port, ['-h', host, ...args], { user, password, env: tlsEnv(host, sslmode, env) });
}

for (const mode of MODES) {
  test(`${mode}: psql over TLS, sslmode=require and verify-full`, async (t) => {
    const server = await startServer(mode, tlsFacts({ tls: { ...certs.localhost, ca: certs.ca } }));
    t.after(() => server.close());
    for (const sslmode of ['require', 'verify-ca', 'verify-full']) {
      const result = await psqlTls(server.port, ['-Atc', 'select tls'], { sslmode });
      assert.equal(result.code, 0, `${sslmode}: ${result.stderr}`);
      assert.equal(result.stdout.trim(), 'localhost|-|postgres', sslmode);
    }
  });

  test(`${mode}: the tls callback chooses a certificate per SNI name, once per connection`, async (t) => {
    const calls = [];
    const server = await startServer(mode, tlsFacts({
      async tls({ sniServerName }) {
        calls.push(sniServerName);
        return sniServerName === 'beta.db.test' ? certs.beta : certs.alpha;
      },
    }));
    t.after(() => server.close());
    for (const host of ['alpha.db.test', 'beta.db.test']) {
      const result = await psqlTls(server.port, ['-Atc', 'select 1'], { host });
      assert.equal(result.code, 0, `${host}: ${result.stderr}`);
      assert.equal(result.stdout.trim().split('|')[0], host);
    }
    assert.deepEqual(calls, ['alpha.db.test', 'beta.db.test'], 'called once per connection, with the name known');
    // verify-full against the wrong certificate must fail: the choice really mattered.
    const wrong = await psqlTls(server.port, ['-c', 'select 1'], { host: 'gamma.db.test' });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /server certificate for "alpha.db.test" does not match host name "gamma.db.test"/);
  });

  test(`${mode}: md5 and cleartext passwords over TLS; onTlsUpgrade sees tlsInfo before startup`, async (t) => {
    for (const authMode of ['md5Password', 'cleartextPassword']) {
      const upgrades = [];
      const server = await startServer(mode, tlsFacts({
        authMode,
        tls: certs.localhost,
        onTlsUpgrade(state) {
          upgrades.push(structuredClone(state));
        },
        async validateCredentials(c) {
          return c.authMode === 'md5Password'
            ? c.hash === await gateway.hashMd5Password(c.user, 'pw', c.salt)
            : c.password === 'pw';
        },
      }));
      const ok = await psqlTls(server.port, ['-Atc', 'select 1'], { sslmode: 'require', user: 'bob', password: 'pw' });
      const bad = await psqlTls(server.port, ['-c', 'select 1'], { sslmode: 'require', user: 'bob', password: 'no' });
      await server.close();
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(bad.stderr, /password authentication failed for user "bob"/);
      assert.equal(upgrades.length, 2);
      assert.equal(upgrades[0].hasStarted, false);
      assert.equal(upgrades[0].tlsInfo.sniServerName, 'localhost');
      assert.equal(upgrades[0].clientInfo, undefined);
    }
  });

  test(`${mode}: node-postgres with ssl.servername`, async (t) => {
    const server = await startServer(mode, tlsFacts({ tls: certs.alpha }));
    t.after(() => server.close());
    const client = new pg.Client({
      host: '127.0.0.1', port: server.port, user: 'carol',
      ssl: { servername: 'alpha.db.test', ca: certs.ca },
    });
    await client.connect();
    assert.deepEqual((await client.query('select 1')).rows, [{ sni: 'alpha.db.test', alpn: '-', user: 'carol' }]);
    await client.end();
  });

  test(`${mode}: with tls set, a plaintext startup is refused`, async (t) => {
    const server = await startServer(mode, tlsFacts({ tls: certs.localhost }));
    t.after(() => server.close());
    const result = await psql(server.port, ['-c', 'select 1'], { env: { PGSSLMODE: 'disable' } });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /FATAL: {2}SSL connection is required/);
  });

  test(`${mode}: bytes injected after SSLRequest are refused (CVE-2021-23214)`, async (t) => {
    const server = await startServer(mode, tlsFacts({ tls: certs.localhost }));
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(Buffer.concat([frontend.special(SSL_REQUEST), frontend.startup({ user: 'injected' })]));
    const received = await client.waitClosed();
    assert.equal(String.fromCharCode(received[0]), 'S');
    const [error] = parseMessages(received.subarray(1));
    assert.equal(error.type, 'E');
    const fields = errorFields(error.body);
    assert.equal(fields.C, '08P01');
    assert.equal(fields.M, 'received unencrypted data after SSL request');
  });

  test(`${mode}: garbage instead of a TLS handshake ends that connection only`, async (t) => {
    const server = await startServer(mode, tlsFacts({ tls: certs.localhost }));
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.special(SSL_REQUEST));
    await client.waitFor((b) => b.length >= 1);
    client.send(Buffer.from('this is not a TLS ClientHello at all, just text\r\n'));
    await client.waitClosed();
    const ok = await psqlTls(server.port, ['-Atc', 'select 1'], { sslmode: 'require' });
    assert.equal(ok.code, 0, ok.stderr);
  });

  test(`${mode}: an encrypted key opens with tls.passphrase`, async (t) => {
    const server = await startServer(mode, tlsFacts({ tls: { key: certs.encryptedKey, cert: certs.localhost.cert, passphrase: 'open sesame' } }));
    t.after(() => server.close());
    const result = await psqlTls(server.port, ['-Atc', 'select 1']);
    assert.equal(result.code, 0, result.stderr);
    assert.throws(() => gateway.createServer({ tls: { key: certs.encryptedKey, cert: certs.localhost.cert, passphrase: 'wrong' } }),
      /cannot decrypt the private key: wrong tls.passphrase/);
    assert.throws(() => gateway.createServer({ tls: { key: certs.encryptedKey, cert: certs.localhost.cert } }),
      /tls.key is encrypted: tls.passphrase is required/);
    assert.throws(() => gateway.createServer({ tls: { key: Buffer.from('-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n'), cert: certs.localhost.cert } }),
      /tls\.key(: cannot read the PEM private key| does not match tls\.cert, or is unusable)/);
  });

  test(`${mode}: certificate authentication: CN must match the user, the CA must vouch`, async (t) => {
    const seen = [];
    const server = await startServer(mode, tlsFacts({
      authMode: 'certificate',
      tls: { ...certs.localhost, ca: certs.ca },
      onAuthenticated(state) { seen.push(state.tlsInfo.clientCertificate); },
    }));
    t.after(() => server.close());
    const withCert = (name) => ({ PGSSLCERT: certs.file(`${name}-cert.pem`), PGSSLKEY: certs.file(`${name}-key.pem`) });
    const ok = await psqlTls(server.port, ['-Atc', 'select 1'], { user: 'alice', env: withCert('alice') });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'localhost|-|alice');
    assert.ok(seen[0] instanceof Uint8Array && seen[0][0] === 0x30, 'tlsInfo.clientCertificate is the DER certificate');
    const wrongUser = await psqlTls(server.port, ['-c', 'select 1'], { user: 'bob', env: withCert('alice') });
    assert.match(wrongUser.stderr, /FATAL: {2}client certificate CN 'alice' does not match user 'bob'/);
    const untrusted = await psqlTls(server.port, ['-c', 'select 1'], { user: 'alice', env: withCert('rogue-alice') });
    assert.match(untrusted.stderr, /FATAL: {2}client certificate is invalid/);
    const none = await psqlTls(server.port, ['-c', 'select 1'], { user: 'alice', env: { PGSSLCERT: '/nonexistent', PGSSLKEY: '/nonexistent' } });
    assert.match(none.stderr, /FATAL: {2}client certificate is invalid/);
  });

  test(`${mode}: certificate authentication without TLS is refused as 0.2.4 does`, async (t) => {
    const server = await startServer(mode, tlsFacts({ authMode: 'certificate', tls: () => certs.localhost }));
    t.after(() => server.close());
    // The tls callback form allows a plaintext attempt to reach the startup check first.
    const result = await psql(server.port, ['-c', 'select 1'], { user: 'alice', env: { PGSSLMODE: 'disable' } });
    assert.match(result.stderr, /SSL connection is required/);
  });

  test(`${mode}: direct TLS (PostgreSQL 17 sslnegotiation=direct) needs ALPN postgresql`, async (t) => {
    const server = await startServer(mode, tlsFacts({ tls: certs.localhost }));
    t.after(() => server.close());
    const direct = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: certs.ca, ALPNProtocols: ['postgresql'] });
    await new Promise((resolve, reject) => direct.once('secureConnect', resolve).once('error', reject));
    assert.equal(direct.alpnProtocol, 'postgresql');
    let received = Buffer.alloc(0);
    direct.on('data', (d) => { received = Buffer.concat([received, d]); });
    direct.write(Buffer.concat([frontend.startup({ user: 'dora' }), frontend.query('select 1')]));
    await new Promise((resolve) => {
      const check = setInterval(() => {
        if (parseMessages(received).filter((m) => m.type === 'Z').length === 2) { clearInterval(check); resolve(); }
      }, 10);
    });
    const row = parseMessages(received).find((m) => m.type === 'D');
    assert.match(row.body.toString(), /localhost.*postgresql.*dora/s);
    direct.destroy();

    const noAlpn = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: certs.ca });
    const outcome = await new Promise((resolve) => {
      noAlpn.once('secureConnect', () => resolve('connected'));
      noAlpn.once('error', () => resolve('refused'));
      noAlpn.once('close', () => resolve('refused'));
    });
    assert.equal(outcome, 'refused');
  });
}

for (const mode of MODES) {
  test(`${mode}: a client reset on a detached TLS connection without an 'error' listener does not crash`, async (t) => {
    let detached;
    const server = await startServer(mode, () => ({
      tls: certs.localhost,
      onTlsUpgrade(state, connection) {
        detached = connection.detach(); // no 'error' listener on purpose
        detached.on('data', () => {});
      },
    }));
    t.after(() => server.close());
    const net = await import('node:net');
    const raw = net.connect(server.port, '127.0.0.1');
    raw.on('error', () => {});
    const client = tls.connect({ socket: raw, servername: 'localhost', ca: certs.ca, ALPNProtocols: ['postgresql'] });
    client.on('error', () => {});
    await new Promise((resolve) => client.once('secureConnect', resolve));
    client.write(frontend.startup({ user: 'u' }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    raw.resetAndDestroy(); // RST: the server's read fails
    await new Promise((resolve) => detached.once('close', resolve));
    // Still here, and still accepting.
    const probe = await rawClient(server.port);
    probe.send(frontend.special(SSL_REQUEST));
    await probe.waitFor((b) => b.length >= 1);
    assert.equal(probe.received.toString(), 'S');
    probe.close();
  });
}

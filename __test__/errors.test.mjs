// Failures the client cannot report reach the operator: onError, or one line per kind on
// stderr without it. A hook that throws, a TLS handshake that fails, a refused certificate.
import test from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { MODES, startServer, psql, sleep, until } from './helpers.mjs';
import { makeCertificates } from './certs.mjs';

const certs = makeCertificates();

function throwingServer(extra = {}) {
  return () => ({
    authMode: 'none',
    onMessage(data, { isAuthenticated }) {
      if (!isAuthenticated || data[0] !== 0x51) return false;
      const sql = data.toString('utf8', 5, data.length - 1);
      if (sql === 'boom') throw new Error('boom');
      if (sql === 'async boom') return Promise.reject(new Error('async boom'));
      throw { severity: 'ERROR', code: '22012', message: 'division by zero' };
    },
    ...extra,
  });
}


async function connectedClient(t, port) {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'u' });
  client.on('error', () => {}); // the server may close first, at the end
  await client.connect();
  t.after(() => client.end());
  return client;
}

// First in the file: the default prints once per kind per process.
test('without onError, the first failure of each kind is printed once to stderr', async (t) => {
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'PG_GATEWAY_ERROR') warnings.push(w.message); };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const server = await startServer('js', throwingServer());
  t.after(() => server.close());
  const client = await connectedClient(t, server.port);
  await assert.rejects(client.query('boom'), (err) => err.code === 'XX000' && err.message === 'boom');
  await assert.rejects(client.query('async boom'), (err) => err.code === 'XX000');
  await assert.rejects(client.query('div'), (err) => err.code === '22012');
  await until(() => warnings.length > 0);
  await sleep(50);
  assert.deepEqual(warnings, ['onMessage failed: boom (set the onError option to see every error; this is the only one of its kind printed)']);
});

for (const mode of MODES) {
  test(`${mode}: onError hears of a hook that failed (XX000), with its cause, and not of a chosen SQLSTATE`, async (t) => {
    const seen = [];
    const server = await startServer(mode, throwingServer({
      onError(error, state, connection) { seen.push({ error, authenticated: state?.isAuthenticated, connection }); },
    }));
    t.after(() => server.close());
    const client = await connectedClient(t, server.port);
    await assert.rejects(client.query('boom'), (err) => err.code === 'XX000' && err.message === 'boom');
    await assert.rejects(client.query('async boom'), (err) => err.code === 'XX000');
    await assert.rejects(client.query('div'), (err) => err.code === '22012');
    await until(() => seen.length === 2);
    assert.deepEqual(seen.map(({ error }) => [error.kind, error.hook, error.message, error.cause?.message]), [
      ['hook', 'onMessage', 'onMessage failed: boom', 'boom'],
      ['hook', 'onMessage', 'onMessage failed: async boom', 'async boom'],
    ]);
    assert.equal(seen[0].authenticated, true);
    assert.ok(seen[0].connection, 'the connection is passed');
  });

  test(`${mode}: onError hears why a TLS handshake failed, and that a client certificate is X.509 v1`, async (t) => {
    const seen = [];
    const server = await startServer(mode, () => ({
      authMode: 'certificate',
      tls: { ...certs.localhost, ca: certs.ca },
      onError(error) { seen.push(error); },
    }));
    t.after(() => server.close());
    const env = (extra) => ({ PGHOSTADDR: '127.0.0.1', PGSSLMODE: 'verify-ca', PGSSLROOTCERT: certs.file('ca-cert.pem'), ...extra });
    // The client does not trust the server's certificate: it ends the handshake with an alert.
    const distrust = await psql(server.port, ['-h', 'localhost', '-c', 'select 1'], { user: 'alice', env: env({ PGSSLROOTCERT: certs.file('rogue-ca-cert.pem') }) });
    assert.notEqual(distrust.code, 0);
    await until(() => seen.length === 1);
    assert.equal(seen[0].kind, 'tls');
    assert.match(seen[0].message, /^TLS handshake failed: received fatal alert/);
    // An X.509 v1 client certificate (OpenSSL 3.0's default for `x509 -req` without extensions)
    // is refused inside the handshake: the client hears only 'certificate unknown'; the operator, why.
    const v1 = await psql(server.port, ['-h', 'localhost', '-c', 'select 1'], {
      user: 'alice',
      env: env({ PGSSLCERT: certs.file('alice-v1-cert.pem'), PGSSLKEY: certs.file('alice-v1-key.pem') }),
    });
    assert.match(v1.stderr, /certificate unknown/);
    await until(() => seen.length === 2);
    assert.equal(seen[1].kind, 'tls');
    assert.match(seen[1].message, /^TLS handshake failed: the certificate is X\.509 v1, and only v3 is accepted: sign it with an extension/);
    if (mode === 'native') {
      await until(() => server.server.stats().tlsFailures === 2);
      assert.equal(server.server.stats().tlsHandshakes, 0);
    }
  });
}

test('onError hears why a client certificate was refused after the handshake (another CA)', async (t) => {
  const seen = [];
  const server = await startServer('native', () => ({
    authMode: 'certificate',
    tls: { ...certs.localhost, ca: certs.ca },
    onError(error) { seen.push(error); },
  }));
  t.after(() => server.close());
  const rogue = await psql(server.port, ['-h', 'localhost', '-c', 'select 1'], {
    user: 'alice',
    env: { PGHOSTADDR: '127.0.0.1', PGSSLMODE: 'verify-ca', PGSSLROOTCERT: certs.file('ca-cert.pem'), PGSSLCERT: certs.file('rogue-alice-cert.pem'), PGSSLKEY: certs.file('rogue-alice-key.pem') },
  });
  assert.match(rogue.stderr, /client certificate is invalid/);
  await until(() => seen.length === 1);
  assert.equal(seen[0].kind, 'certificate');
  assert.match(seen[0].message, /^client certificate of user "alice" refused: /);
});

// Reverse proxying by SNI to a real PostgreSQL server: the README's example (detach() and
// pipe), with psql (verify-full) and pgbench through it, SCRAM passed through untouched.
import test from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCertificates } from './certs.mjs';
import { startPostgres } from './postgres.mjs';
import { MODES, psql, run, startExample, startServer } from './helpers.mjs';

const certs = makeCertificates();

test('examples/reverse-proxy-sni.mjs proxies psql and pgbench to a real PostgreSQL by SNI', { timeout: 300000 }, async (t) => {
  const upstream = await startPostgres();
  t.after(() => upstream.stop());
  // The README's file names, in a directory of their own.
  const certDir = mkdtempSync(path.join(os.tmpdir(), 'pggn-sni-'));
  copyFileSync(certs.file('wildcard-key.pem'), path.join(certDir, 'server-key.pem'));
  copyFileSync(certs.file('wildcard-cert.pem'), path.join(certDir, 'server-cert.pem'));
  copyFileSync(certs.file('ca-cert.pem'), path.join(certDir, 'ca-cert.pem'));
  const proxy = await startExample('reverse-proxy-sni.mjs', [], { PORT: '0', UPSTREAM_PORT: String(upstream.port), CERT_DIR: certDir });
  t.after(() => proxy.stop());

  const env = (host) => ({
    PGHOSTADDR: '127.0.0.1', PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.file('ca-cert.pem'), PGPASSWORD: 'postgres',
  });

  await t.test('psql reaches the upstream server through the proxy (verify-full, SCRAM)', async () => {
    const result = await psql(proxy.port, ['-h', '12345.db.example.com', '-Atc',
      "select current_setting('port'), version() like 'PostgreSQL 1%', ssl from pg_stat_ssl where pid = pg_backend_pid()"], {
      password: 'postgres', env: env('12345.db.example.com'),
    });
    assert.equal(result.code, 0, result.stderr);
    // The upstream's own port, and no TLS on the upstream hop: the gateway terminated it.
    assert.equal(result.stdout.trim(), `${upstream.port}|t|f`);
  });

  await t.test('a wrong password is the upstream server\'s answer', async () => {
    const result = await psql(proxy.port, ['-h', '12345.db.example.com', '-c', 'select 1'], {
      password: 'wrong', env: { ...env(), PGPASSWORD: 'wrong' },
    });
    assert.match(result.stderr, /password authentication failed for user "postgres"/);
  });

  await t.test('a client without SNI gets the example\'s error', async () => {
    const result = await psql(proxy.port, ['-h', '127.0.0.1', '-c', 'select 1'], {
      password: 'postgres', env: { PGSSLMODE: 'require', PGPASSWORD: 'postgres' },
    });
    assert.match(result.stderr, /FATAL: {2}ssl sni extension required/);
  });

  await t.test('pgbench initializes and runs through the proxy', async () => {
    const pgbenchEnv = { ...env(), PGSSLMODE: 'require' };
    const init = await run('pgbench', ['-h', '12345.db.example.com', '-p', String(proxy.port), '-U', 'postgres', '-i', '-q', '-s', '1', 'postgres'], { env: pgbenchEnv, timeout: 120000 });
    assert.equal(init.code, 0, init.stderr);
    for (const mode of ['simple', 'extended']) {
      const bench = await run('pgbench', ['-h', '12345.db.example.com', '-p', String(proxy.port), '-U', 'postgres', '-T', '2', '-c', '4', '-j', '2', '-M', mode, 'postgres'], { env: pgbenchEnv, timeout: 60000 });
      assert.equal(bench.code, 0, bench.stderr);
      assert.match(bench.stdout, /number of failed transactions: 0 /);
    }
  });
});

for (const mode of MODES) {
  test(`${mode}: connection.proxy() after TLS termination, chosen by SNI, to a real PostgreSQL`, { timeout: 300000 }, async (t) => {
    const upstream = await startPostgres();
    t.after(() => upstream.stop());
    const routes = { alpha: upstream.port, closed: 1 };
    const server = await startServer(mode, () => ({
      tls: certs.wildcard,
      onTlsUpgrade({ tlsInfo }, connection) {
        const [id] = (tlsInfo.sniServerName ?? '').split('.');
        connection.proxy({ host: '127.0.0.1', port: routes[id] ?? routes.closed });
      },
    }));
    t.after(() => server.close());
    const env = { PGHOSTADDR: '127.0.0.1', PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.file('ca-cert.pem'), PGPASSWORD: 'postgres' };

    const result = await psql(server.port, ['-h', 'alpha.db.example.com', '-Atc', "select current_setting('port')"], { password: 'postgres', env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), String(upstream.port));

    const bench = await run('pgbench', ['-h', 'alpha.db.example.com', '-p', String(server.port), '-U', 'postgres', '-i', '-q', 'postgres'], { env, timeout: 120000 });
    assert.equal(bench.code, 0, bench.stderr);
    const load = await run('pgbench', ['-h', 'alpha.db.example.com', '-p', String(server.port), '-U', 'postgres', '-T', '2', '-c', '4', '-j', '2', '-M', 'extended', 'postgres'], { env, timeout: 60000 });
    assert.match(load.stdout, /number of failed transactions: 0 /, load.stderr);

    const unreachable = await psql(server.port, ['-h', 'nowhere.db.example.com', '-c', 'select 1'], { password: 'postgres', env });
    assert.match(unreachable.stderr, /could not connect to upstream server 127\.0\.0\.1:1/);
  });

  test(`${mode}: connection.proxy({ startup: true }) replays the StartupMessage the gateway consumed`, { timeout: 120000 }, async (t) => {
    const upstream = await startPostgres();
    t.after(() => upstream.stop());
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onStartup(state, connection) {
        connection.proxy({ host: '127.0.0.1', port: upstream.port, startup: true });
        return true;
      },
    }));
    t.after(() => server.close());
    const result = await psql(server.port, ['-Atc', 'select current_user, current_database()'], { password: 'postgres', database: 'postgres' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'postgres|postgres');
  });
}

for (const mode of MODES) {
  test(`${mode}: detach() after TLS gives a plaintext Duplex (encrypted: true) that pipes to a real PostgreSQL`, { timeout: 120000 }, async (t) => {
    const upstream = await startPostgres();
    t.after(() => upstream.stop());
    const net = await import('node:net');
    let encrypted;
    const server = await startServer(mode, () => ({
      tls: certs.wildcard,
      onTlsUpgrade(state, connection) {
        const socket = connection.detach();
        encrypted = socket.encrypted;
        const proxySocket = net.connect({ host: '127.0.0.1', port: upstream.port });
        proxySocket.pipe(socket);
        socket.pipe(proxySocket);
        proxySocket.on('close', () => socket.destroy());
        socket.on('close', () => proxySocket.destroy());
        proxySocket.on('error', () => socket.destroy());
        socket.on('error', () => proxySocket.destroy());
      },
    }));
    t.after(() => server.close());
    const env = { PGHOSTADDR: '127.0.0.1', PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.file('ca-cert.pem'), PGPASSWORD: 'postgres' };
    const result = await psql(server.port, ['-h', 'x.db.example.com', '-Atc', "select current_setting('port'), repeat('ab', 100000) = repeat('ab', 100000)"], { password: 'postgres', env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), `${upstream.port}|t`);
    assert.equal(encrypted, true);
    const load = await run('pgbench', ['-h', 'x.db.example.com', '-p', String(server.port), '-U', 'postgres', '-i', '-q', 'postgres'], { env, timeout: 120000 });
    assert.equal(load.code, 0, load.stderr);
  });
}

// The Bun and Deno smoke lane (run by .ci/runtimes, and by hand: `bun smoke.mjs`,
// `deno run -A smoke.mjs`): the addon loads, serves psql through createServer and through
// `new PostgresConnection(socket)`, over TLS, after detach(), and shuts down with clients
// connected. Prints one JSON line per check ({ check, ok, detail }) and exits 1 if one failed.
// CERT_DIR: a directory with server-key.pem and server-cert.pem (TLS checks).
import net from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import pg from 'pg';
import { createServer, PostgresConnection } from '../../index.mjs';

const require = createRequire(import.meta.url);
const exec = promisify(execFile);
const certDir = process.env.CERT_DIR;
const tls = certDir
  ? { key: readFileSync(path.join(certDir, 'server-key.pem')), cert: readFileSync(path.join(certDir, 'server-cert.pem')) }
  : null;
const answer = (where) => ({
  authMode: 'none',
  onQuery: ({ sql }) => ({ fields: [{ name: 'answer', type: 'text' }], rows: [[`${sql} via ${where}`]] }),
});
let failed = false;

async function check(name, body) {
  const deadline = new Promise((_, reject) => setTimeout(() => reject(new Error('timed out after 20 s')), 20000).unref?.());
  try {
    const detail = await Promise.race([body(), deadline]);
    console.log(JSON.stringify({ check: name, ok: true, detail }));
  } catch (err) {
    failed = true;
    console.log(JSON.stringify({ check: name, ok: false, detail: String(err?.message ?? err) }));
  }
}

async function psql(port, sql, sslmode = 'disable') {
  const { stdout } = await exec('psql', ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'smoke', '-Atc', sql], {
    env: { ...process.env, PGSSLMODE: sslmode, PGCONNECT_TIMEOUT: '10' },
  });
  return stdout.trim();
}

function expect(actual, expected) {
  if (actual !== expected) throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  return actual;
}

/** A net.Server handing each socket to `new PostgresConnection(socket, options)`. */
async function socketServer(options) {
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => {});
    try {
      new PostgresConnection(socket, options);
    } catch (err) {
      server.emit('refused', err);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

await check('load (ESM named exports and CommonJS)', async () => {
  const cjs = require('../../index.js');
  expect(typeof cjs.createServer, 'function');
  expect(cjs.createServer, createServer);
  return `${process.versions.bun ? `bun ${process.versions.bun}` : process.versions.deno ? `deno ${process.versions.deno}` : `node ${process.version}`}`;
});

await check('createServer serves psql', async () => {
  const server = createServer(answer('createServer'));
  const { port } = await server.listen(0);
  try {
    return expect(await psql(port, 'select 1'), 'select 1 via createServer');
  } finally {
    await server.close();
  }
});

await check("new PostgresConnection(socket) serves psql (driver 'js')", async () => {
  const server = await socketServer(answer('js driver'));
  try {
    return expect(await psql(server.address().port, 'select 2'), 'select 2 via js driver');
  } finally {
    server.close();
  }
});

await check("new PostgresConnection(socket, { driver: 'native' }) serves psql (Deno: refuses at once)", async () => {
  const server = await socketServer({ ...answer('native driver'), driver: 'native' });
  let refusal = null;
  server.on('refused', (err) => { refusal = err; });
  try {
    const started = Date.now();
    const result = await psql(server.address().port, 'select 3').catch((err) => err);
    if (!process.versions.deno) return expect(result, 'select 3 via native driver');
    // Deno's sockets have no descriptor: refused, and the client hears so at once (its socket
    // is closed), not at its connect timeout.
    if (refusal && Date.now() - started < 5000) return `refused: ${refusal.message}`;
    throw new Error(`not refused at once: ${result?.message ?? result}`);
  } finally {
    server.close();
  }
});

if (tls) {
  await check('TLS: createServer and the js driver', async () => {
    const server = createServer({ ...answer('TLS createServer'), tls });
    const { port } = await server.listen(0);
    const js = await socketServer({ ...answer('TLS js driver'), tls });
    try {
      expect(await psql(port, 'select 4', 'require'), 'select 4 via TLS createServer');
      return expect(await psql(js.address().port, 'select 5', 'require'), 'select 5 via TLS js driver');
    } finally {
      js.close();
      await server.close();
    }
  });
}

await check('detach(): the js driver hands its client to an upstream', async () => {
  const upstream = createServer(answer('upstream'));
  const { port: upstreamPort } = await upstream.listen(0);
  const front = await socketServer({
    authMode: 'none',
    onMessage(data, state, connection) {
      if (state.hasStarted) return false;
      const client = connection.detach();
      const socket = net.connect(upstreamPort, '127.0.0.1');
      socket.write(data); // the startup packet, replayed
      client.pipe(socket).pipe(client);
      client.on('error', () => socket.destroy());
      socket.on('error', () => client.destroy());
      return true;
    },
  });
  try {
    return expect(await psql(front.address().port, 'select 6'), 'select 6 via upstream');
  } finally {
    front.close();
    await upstream.close();
  }
});

await check('close() with clients connected: they get 57P01 and close() resolves', async () => {
  const server = createServer(answer('shutdown'));
  const { port } = await server.listen(0);
  const clients = await Promise.all([1, 2, 3].map(async () => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'smoke' });
    const ended = new Promise((resolve) => client.on('error', (err) => resolve(err.code)));
    await client.connect();
    await client.query('select 7');
    return { ended }; // wrapped: an async function returning a promise would wait for it
  }));
  await server.close({ gracePeriod: 2000 });
  const codes = await Promise.all(clients.map(({ ended }) => ended));
  expect(codes.join(','), '57P01,57P01,57P01');
  return 'closed';
});

process.exit(failed ? 1 : 0);

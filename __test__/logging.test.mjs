// The `logger` option: connection lifecycle lines (as PostgreSQL's log_connections and
// log_disconnections), the FATAL error that ended a connection, and server-side errors, with
// real clients on every driver. And `stats: false`.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import pg from 'pg';
import { MODES, startServer, sleep, until } from './helpers.mjs';
import { createServer, createStartupMessage, PostgresConnection } from '../index.js';


function passwordServer(extra) {
  return () => ({
    authMode: 'cleartextPassword',
    validateCredentials: ({ password }) => password === 'right',
    ...extra,
  });
}

async function login(port, user, password, more = {}) {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, ...more });
  client.on('error', () => {});
  await client.connect();
  return client;
}

for (const mode of MODES) {
  test(`${mode}: a logger hears each connection arrive, log in and leave, with who, how long and how many bytes`, async (t) => {
    const lines = [];
    const server = await startServer(mode, passwordServer({ logger: (entry) => lines.push(entry), logLevel: 'debug' }));
    t.after(() => server.close());
    const client = await login(server.port, 'alice', 'right', { database: 'shop', application_name: 'billing' });
    const { rows } = await client.query('select 1').catch(() => ({ rows: [] })); // no onMessage: an error, fine
    assert.deepEqual(rows, []);
    await client.end();
    await until(() => lines.some((l) => l.msg === 'disconnection'));

    assert.deepEqual(lines.map((l) => `${l.level} ${l.msg}`), ['debug connection received', 'info connection authorized', 'info disconnection']);
    const [received, authorized, gone] = lines;
    assert.equal(received.remoteAddress, '127.0.0.1');
    assert.equal(typeof received.remotePort, 'number');
    assert.ok(Number.isInteger(received.pid) && received.pid > 0);
    for (const line of [authorized, gone]) {
      assert.equal(line.pid, received.pid);
      assert.equal(line.remotePort, received.remotePort);
      assert.equal(line.user, 'alice');
      assert.equal(line.database, 'shop');
      assert.equal(line.applicationName, 'billing');
      assert.equal(line.tls, false);
    }
    assert.equal(gone.reason, 'end');
    assert.ok(gone.durationMs >= 0 && gone.durationMs < 5000, `durationMs ${gone.durationMs}`);
    assert.ok(gone.bytesReceived > 50 && gone.bytesSent > 100, JSON.stringify(gone));
    // Absent fields are left out, not sent as null or undefined.
    assert.ok(!('code' in authorized) && !('sni' in authorized), JSON.stringify(authorized));
  });

  test(`${mode}: a refused login is logged once at warn with its SQLSTATE; the default level leaves out debug`, async (t) => {
    const lines = [];
    const server = await startServer(mode, passwordServer({ logger: (entry) => lines.push(entry) }));
    t.after(() => server.close());
    await assert.rejects(login(server.port, 'mallory', 'wrong'), (err) => err.code === '28P01');
    await until(() => lines.some((l) => l.msg === 'disconnection'));
    await sleep(50);
    assert.deepEqual(lines.map((l) => `${l.level} ${l.msg}`), ['warn connection failed', 'info disconnection']);
    assert.equal(lines[0].code, '28P01');
    assert.equal(lines[0].message, 'password authentication failed for user "mallory"');
    assert.equal(lines[0].user, 'mallory');
    assert.equal(lines[1].reason, 'closed');
    assert.equal(lines[1].remoteAddress, '127.0.0.1', 'the peer, even after the socket closed');
  });

  test(`${mode}: a client that stops at the password prompt is logged at authTimeout, with its peer`, async (t) => {
    const lines = [];
    const server = await startServer(mode, passwordServer({ logger: (entry) => lines.push(entry), authTimeout: 300 }));
    t.after(() => server.close());
    const socket = net.connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.resume(); // read, so that the server's close is seen
    socket.write(createStartupMessage({ majorVersion: 3, minorVersion: 0, parameters: { user: 'slow' } }));
    await once(socket, 'close');
    await until(() => lines.some((l) => l.msg === 'disconnection'));
    assert.deepEqual(lines.map((l) => `${l.level} ${l.msg}`), ['info disconnection']);
    assert.equal(lines[0].reason, 'timeout');
    assert.equal(lines[0].user, 'slow');
    assert.equal(lines[0].remoteAddress, '127.0.0.1');
  });

  test(`${mode}: a connection that never sends a StartupMessage is a debug line, not an info one`, async (t) => {
    const lines = [];
    const debug = [];
    const quiet = await startServer(mode, { authMode: 'none', logger: (entry) => lines.push(entry) });
    const verbose = await startServer(mode, { authMode: 'none', logger: (entry) => debug.push(entry), logLevel: 'debug' });
    t.after(() => Promise.all([quiet.close(), verbose.close()]));
    for (const port of [quiet.port, verbose.port]) {
      const socket = net.connect(port, '127.0.0.1');
      await once(socket, 'connect');
      socket.end();
      await once(socket, 'close');
    }
    await until(() => debug.some((l) => l.msg === 'disconnection'));
    await sleep(100);
    assert.deepEqual(lines, [], 'a health check or port probe is not an info line');
    assert.deepEqual(debug.map((l) => `${l.level} ${l.msg}`), ['debug connection received', 'debug disconnection']);
    assert.equal(debug[1].remoteAddress, '127.0.0.1');
    assert.ok(!('user' in debug[1]));
  });

  test(`${mode}: logLevel 'warn' keeps only failures, and a pino-style logger gets (fields, msg)`, async (t) => {
    const calls = [];
    const logger = Object.fromEntries(['debug', 'info', 'warn', 'error'].map((level) => [level, (fields, msg) => calls.push({ level, fields, msg })]));
    const server = await startServer(mode, passwordServer({ logger, logLevel: 'warn' }));
    t.after(() => server.close());
    const client = await login(server.port, 'alice', 'right');
    await client.end();
    await assert.rejects(login(server.port, 'alice', 'wrong'), (err) => err.code === '28P01');
    await until(() => calls.length > 0);
    await sleep(100);
    assert.deepEqual(calls.map((c) => `${c.level} ${c.msg}`), ['warn connection failed']);
    assert.equal(calls[0].fields.code, '28P01');
    assert.ok(!('msg' in calls[0].fields) && !('level' in calls[0].fields));
  });

  test(`${mode}: without onError, a hook that fails goes to the logger at 'error' with its cause`, async (t) => {
    const lines = [];
    const warnings = [];
    const onWarning = (w) => { if (w.code === 'PG_GATEWAY_ERROR') warnings.push(w.message); };
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    const server = await startServer(mode, {
      authMode: 'none',
      logger: (entry) => lines.push(entry),
      logLevel: 'error',
      onMessage(data, { isAuthenticated }) {
        if (isAuthenticated && data[0] === 0x51) throw new Error('boom');
        return false;
      },
    });
    t.after(() => server.close());
    const client = await login(server.port, 'u');
    await assert.rejects(client.query('x'), (err) => err.code === 'XX000');
    await client.end();
    await until(() => lines.length > 0);
    await sleep(50);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].level, 'error');
    assert.equal(lines[0].msg, 'onMessage failed: boom');
    assert.equal(lines[0].hook, 'onMessage');
    assert.equal(lines[0].err.cause.message, 'boom');
    assert.deepEqual(warnings, [], 'a logger takes the place of the stderr default');
  });
}

test('createServer: a client refused by maxConnections, and the clients ended by close(), are logged', async (t) => {
  const lines = [];
  const server = createServer({ authMode: 'none', maxConnections: 1, logger: (entry) => lines.push(entry) });
  await server.listen({ port: 0 });
  const { port } = server.address();
  const first = await login(port, 'first');
  await assert.rejects(login(port, 'second'), (err) => err.code === '53300');
  await until(() => lines.some((l) => l.code === '53300'));
  const refused = lines.find((l) => l.code === '53300');
  assert.equal(refused.level, 'warn');
  assert.equal(refused.message, 'sorry, too many clients already');
  const ended = new Promise((resolve) => first.once('error', resolve));
  await server.close({ gracePeriod: 1000 });
  await ended;
  await until(() => lines.some((l) => l.code === '57P01'));
  // An operator's shutdown is not a problem: info, as PostgreSQL's own shutdown lines.
  assert.equal(lines.find((l) => l.code === '57P01').level, 'info');
  assert.equal(lines.filter((l) => l.msg === 'disconnection' && l.reason === 'shutdown').length, 1);
});

for (const mode of MODES) {
  test(`${mode}: a logger that throws or rejects breaks nothing`, async (t) => {
    let calls = 0;
    const throwing = await startServer(mode, { authMode: 'none', logger: () => { calls++; throw new Error('logger down'); } });
    // An async logger whose promise rejects: no unhandled rejection (node --test fails on one).
    const rejecting = await startServer(mode, { authMode: 'none', logger: async () => { calls++; throw new Error('logger down'); } });
    t.after(() => Promise.all([throwing.close(), rejecting.close()]));
    for (const port of [throwing.port, rejecting.port]) {
      for (let i = 0; i < 3; i++) {
        const client = await login(port, 'u');
        await client.end();
      }
    }
    await until(() => calls >= 12);
    await sleep(50);
  });
}

test('logger, logLevel and stats are checked', () => {
  assert.throws(() => createServer({ logger: 'stdout' }), /option logger must be a function/);
  assert.throws(() => createServer({ logger: { info() {} } }), /debug, info, warn and error methods/);
  assert.throws(() => createServer({ logger: console, logLevel: 'verbose' }), /unknown logLevel 'verbose'.*'debug', 'info', 'warn', 'error', 'silent'/);
  assert.throws(() => createServer({ stats: 'yes' }), /option stats must be a boolean/);
  assert.throws(() => new PostgresConnection(null, { logger: 42 }), /option logger/);
  createServer({ logger: console, logLevel: 'silent', stats: false });
});

test('stats: false leaves the per-connection counters out of server.stats()', async (t) => {
  const counting = createServer({ authMode: 'none', onStartup: () => {} });
  const quiet = createServer({ authMode: 'none', onStartup: () => {}, stats: false });
  for (const server of [counting, quiet]) {
    await server.listen({ port: 0 });
    t.after(() => server.close());
    const client = await login(server.address().port, 'u');
    await client.end();
  }
  await until(() => counting.stats().bytesReceived > 0 && counting.connectionCount === 0 && quiet.connectionCount === 0);
  const on = counting.stats();
  const off = quiet.stats();
  assert.equal(on.connectionsTotal, 1);
  assert.equal(off.connectionsTotal, 1, 'connections are still counted');
  assert.ok(on.hookCalls >= 1 && on.bytesSent > 0);
  assert.deepEqual([off.bytesReceived, off.bytesSent, off.hookCalls], [0, 0, 0]);
});

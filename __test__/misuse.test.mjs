// Ordinary mistakes are caught early and said in our words: listen() in net.Server's forms and
// with Node's error codes, option typos and wrong types, a file name where PEM belongs.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import pg from 'pg';
import { gateway, startServer, run, sleep } from './helpers.mjs';

const { createServer, PostgresConnection } = gateway;

test("listen(port), listen(port, host, callback) and listen('0') as net.Server takes them", async (t) => {
  const a = createServer({ authMode: 'none' });
  t.after(() => a.close());
  const first = await a.listen(0);
  assert.notEqual(first.port, 5432);
  assert.notEqual(first.port, 0);
  const b = createServer({ authMode: 'none' });
  t.after(() => b.close());
  let called = false;
  const second = await b.listen(0, '127.0.0.1', () => { called = true; });
  assert.equal(called, true);
  assert.equal(second.address, '127.0.0.1');
  const c = createServer({ authMode: 'none' });
  t.after(() => c.close());
  assert.notEqual((await c.listen('0')).port, 0);
  await assert.rejects(createServer({ authMode: 'none' }).listen(70000), (err) => err.code === 'ERR_SOCKET_BAD_PORT' && /0 to 65535/.test(err.message));
});

test('a busy port fails with EADDRINUSE, as net.Server does', async (t) => {
  const holder = net.createServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.after(() => holder.close());
  const { port } = holder.address();
  const server = createServer({ authMode: 'none' });
  await assert.rejects(server.listen(port), (err) => {
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.syscall, 'listen');
    assert.equal(err.port, port);
    assert.match(err.message, new RegExp(`address already in use 127\\.0\\.0\\.1:${port}`));
    return true;
  });
});

test('an unknown option is warned about once, with the option it was probably meant to be', async (t) => {
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'PG_GATEWAY_UNKNOWN_OPTION') warnings.push(w.message); };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  createServer({ authmode: 'none', onMesage() {} });
  createServer({ authmode: 'none' });
  await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  assert.deepEqual(warnings.sort(), [
    "unknown option 'authmode' is ignored (did you mean 'authMode'?)",
    "unknown option 'onMesage' is ignored (did you mean 'onMessage'?)",
  ]);
});

test('wrong option types name the option and what it takes', () => {
  assert.throws(() => createServer({ serverParameters: 'x' }), /option serverParameters must be an object of \{ name: 'value' \} strings, got a string \('x'\)/);
  assert.throws(() => createServer({ serverParameters: { TimeZone: 5 } }), /option serverParameters\.TimeZone must be a string, got a number \(5\)/);
  assert.throws(() => createServer({ authTimeout: '5s' }), /option authTimeout must be an integer/);
  const socket = new net.Socket();
  assert.throws(() => new PostgresConnection(socket, { serverParameters: ['a'] }), /serverParameters must be an object .* got an array/);
  socket.destroy();
});

test('a PEM file name passed where its contents belong says to read the file', () => {
  assert.throws(
    () => createServer({ tls: { key: './server-key.pem', cert: Buffer.from('-----BEGIN CERTIFICATE-----\n') } }),
    /tls\.key is not PEM \(no '-----BEGIN' line\); it looks like a file name: pass fs\.readFileSync\('\.\/server-key\.pem'\)/,
  );
  assert.throws(() => createServer({ tls: { key: Buffer.from([0x30, 0x82, 1, 2]), cert: 'x' } }), /tls\.key is not PEM/);
});

test('sendError and thrown errors: what cannot be sent as given is sent readably and warned about once', async (t) => {
  const warnings = [];
  const onWarning = (w) => { if (w.code === 'PG_GATEWAY_BAD_ERROR') warnings.push(w.message); };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const server = await startServer('js', () => ({
    authMode: 'none',
    onMessage(data, { isAuthenticated }, connection) {
      if (!isAuthenticated || data[0] !== 0x51) return false;
      const sql = data.toString('utf8', 5, data.length - 1);
      if (sql === 'throw warning') throw { severity: 'WARNING', code: '01000', message: 'careful' };
      if (sql === 'empty') connection.sendError({});
      if (sql === 'bad code') connection.sendError({ code: 'oops', message: 'with a bad code' });
      if (sql === 'bad severity') connection.sendError({ severity: 'SEVERE', code: '22012', message: 'division by zero' });
      connection.sendReadyForQuery('idle');
      return true;
    },
  }));
  t.after(() => server.close());
  const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'u' });
  await client.connect();
  t.after(() => client.end());
  await assert.rejects(client.query('empty'), (err) => err.message === 'unknown error' && err.code === 'XX000');
  await assert.rejects(client.query('bad code'), (err) => err.message === 'with a bad code' && err.code === 'XX000');
  await assert.rejects(client.query('bad severity'), (err) => err.severity === 'ERROR' && err.code === '22012');
  // A throw ends the statement: ERROR, whatever severity it carried.
  await assert.rejects(client.query('throw warning'), (err) => err.severity === 'ERROR' && err.code === '01000' && err.message === 'careful');
  assert.deepEqual((await client.query('select 1')).rows, []); // the session goes on
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(warnings, [
    "sendError has no message; sent as 'unknown error'",
    `sendError: code "oops" is not a SQLSTATE (five digits or capital letters, such as '22012'); sent as XX000`,
    "sendError: severity 'SEVERE' is not one of ERROR, FATAL, PANIC, WARNING, NOTICE, DEBUG, INFO, LOG; sent as ERROR",
    "a hook threw an error that has severity 'WARNING': a throw ends the statement, so the client gets ERROR (send a WARNING with connection.sendError and go on)",
  ]);
});

test('createServer maxConnections: one client more gets FATAL 53300 as from PostgreSQL, and a place that frees up is taken again', async (t) => {
  const server = createServer({ authMode: 'none', maxConnections: 2 });
  const { port } = await server.listen(0);
  t.after(() => server.close({ gracePeriod: 0 }));
  const client = () => new pg.Client({ host: '127.0.0.1', port, user: 'u' });
  const a = client();
  const b = client();
  await a.connect();
  await b.connect();
  const c = client();
  await assert.rejects(c.connect(), (err) => err.code === '53300' && err.message === 'sorry, too many clients already' && err.severity === 'FATAL');
  // psql asks for TLS first (sslmode=prefer): answered as usual, then the refusal.
  const psql = await run('psql', ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'u', '-c', 'select 1'], { env: { PGSSLMODE: 'prefer', PGCONNECT_TIMEOUT: '10' } });
  assert.match(psql.stderr, /FATAL:\s+sorry, too many clients already/);
  await a.end();
  const deadline = Date.now() + 5000;
  for (;;) {
    const d = client();
    try {
      await d.connect();
      await d.end();
      break;
    } catch (err) {
      if (err.code !== '53300' || Date.now() > deadline) throw err;
      await sleep(20); // a's place frees up when its socket has closed on the server's side
    }
  }
  await b.end();
  assert.throws(() => createServer({ maxConnections: 0 }), /option maxConnections must be an integer from 1 to 1000000/);
});

test("createServer connections: socket.setTimeout fires 'timeout' after idleness, not while bytes move; bytesRead/bytesWritten count; setKeepAlive says it cannot", async (t) => {
  const timeouts = [];
  let socketOf = null;
  const server = createServer({
    authMode: 'none',
    onAuthenticated(state, connection) {
      socketOf = connection.socket;
      connection.socket.setTimeout(500, () => {
        timeouts.push(Date.now());
        connection.socket.end();
      });
    },
  });
  const { port } = await server.listen(0);
  t.after(() => server.close({ gracePeriod: 0 }));
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'u' });
  client.on('error', () => {});
  await client.connect();
  const started = Date.now();
  let lastQuery = 0;
  // Busy for 1000 ms (a query every 50 ms): no timeout while bytes move.
  while (Date.now() - started < 1000) {
    await client.query('select 1').catch(() => {});
    lastQuery = Date.now();
    await sleep(50);
  }
  assert.deepEqual(timeouts, []);
  assert.ok(socketOf.bytesRead > 0 && socketOf.bytesWritten > 0);
  assert.throws(() => socketOf.setKeepAlive(true, 1000), (err) => err.code === 'ERR_PG_GATEWAY_UNSUPPORTED');
  assert.equal(socketOf.setKeepAlive(false), socketOf);
  // Then idle: 'timeout' once, and the listener's end() closes the connection.
  const ended = new Promise((resolve) => client.once('end', resolve));
  await Promise.race([ended, sleep(5000)]);
  assert.equal(timeouts.length, 1);
  const idle = timeouts[0] - lastQuery;
  assert.ok(idle >= 480 && idle < 3000, `fired after ${idle} ms idle`);
});

test('createServer stats(): connections open, total and refused, bytes both ways, hook calls and time, auth failures', async (t) => {
  const server = createServer({
    authMode: 'cleartextPassword',
    maxConnections: 2,
    validateCredentials: ({ password }) => password === 'right',
    onMessage(data, { isAuthenticated }) {
      return false;
    },
  });
  assert.deepEqual(server.stats().connectionsTotal, 0);
  const { port } = await server.listen(0);
  const client = (password) => new pg.Client({ host: '127.0.0.1', port, user: 'u', password });
  await assert.rejects(client('wrong').connect(), (err) => err.code === '28P01');
  const a = client('right');
  const b = client('right');
  await a.connect();
  await b.connect();
  await assert.rejects(client('right').connect(), (err) => err.code === '53300');
  await assert.rejects(a.query('select 1'), (err) => err.code === '0A000');
  // The refused connection is counted open until its socket has closed.
  for (const deadline = Date.now() + 5000; server.stats().connectionsOpen !== 2 && Date.now() < deadline;) await sleep(10);
  const live = server.stats();
  assert.equal(live.connectionsOpen, 2);
  assert.ok(live.bytesReceived > 100 && live.bytesSent > 100, JSON.stringify(live));
  assert.ok(live.hookCalls >= 4 && live.hookTimeMs >= 0, JSON.stringify(live));
  await a.end();
  await b.end();
  await server.close();
  const after = server.stats();
  assert.equal(after.connectionsOpen, 0);
  assert.equal(after.connectionsTotal, 4);
  assert.equal(after.connectionsRefused, 1);
  assert.equal(after.authFailures, 1);
  assert.ok(after.bytesReceived >= live.bytesReceived && after.bytesSent >= live.bytesSent);
  assert.equal(after.tlsHandshakes, 0);
});

// A socket without a file descriptor (Deno's node:net sockets, simulated here) cannot be
// adopted by driver 'native': a TypeError the caller may catch to serve the socket with the js
// driver; if nobody takes the socket, it is closed, so its client hears EOF at once.
for (const fallback of [true, false]) {
  test(`driver 'native' on a socket without a descriptor: a TypeError, then ${fallback ? 'the js driver serves it' : 'the socket closes at once'}`, async (t) => {
    const errors = [];
    const answer = { authMode: 'none', onQuery: () => ({ fields: [{ name: 'a', type: 'text' }], rows: [['served']] }) };
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      Object.defineProperty(socket._handle, 'fd', { value: -1 });
      socket.on('error', () => {});
      try {
        new PostgresConnection(socket, { ...answer, driver: 'native' });
      } catch (err) {
        errors.push(err);
        if (fallback) new PostgresConnection(socket, answer);
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const started = Date.now();
    const result = await run('psql', ['-X', '-h', '127.0.0.1', '-p', String(server.address().port), '-U', 'u', '-Atc', 'select 1'], {
      env: { PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '20' },
    });
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof TypeError);
    assert.match(errors[0].message, /driver 'native' needs a connected node:net TCP socket with a file descriptor/);
    if (fallback) {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), 'served');
    } else {
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /server closed the connection unexpectedly|could not receive data/);
      assert.ok(Date.now() - started < 10000, `psql waited ${Date.now() - started} ms`);
    }
  });
}

// The hook contracts of pg-gateway 0.2.4, on both entry points, and where we fix 0.2.4:
// whole messages however the client batches them, and hooks that throw answered, not hung.
import test from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import {
  MODES, errorFields, frontend, gateway, message, oneRowResult, parseMessages, psql, rawClient, startServer,
} from './helpers.mjs';

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
test.after(() => assert.deepEqual(unhandled, [], 'no hook failure may become an unhandled rejection'));

const answerQueries = (extra = {}) => ({
  authMode: 'none',
  onMessage(data, { isAuthenticated }, connection) {
    if (!isAuthenticated || data[0] !== 0x51) return false;
    connection.sendData(oneRowResult(['n'], ['1']));
    return true;
  },
  ...extra,
});

for (const mode of MODES) {
  test(`${mode}: hooks see pg-gateway's state objects at each step`, async (t) => {
    const seen = {};
    const server = await startServer(mode, () => ({
      authMode: 'cleartextPassword',
      onStartup(state, connection) {
        seen.startup = structuredClone(state);
        seen.startupLive = connection.state;
        return false;
      },
      validateCredentials(credentials, state) {
        seen.credentials = credentials;
        seen.validateState = structuredClone(state);
        return credentials.password === 'pw';
      },
      onAuthenticated(state) {
        seen.authenticated = structuredClone(state);
      },
      onMessage(data, state) {
        (seen.messages ??= []).push({ type: data[0], hasStarted: state.hasStarted, isAuthenticated: state.isAuthenticated });
        return false;
      },
    }));
    t.after(() => server.close());
    const result = await psql(server.port, ['-c', 'select 1'], { user: 'bob', password: 'pw', database: 'shop', env: { PGAPPNAME: 'tests' } });
    assert.match(result.stderr, /Queries not yet implemented/);
    assert.deepEqual(seen.startup.clientInfo.parameters.user, 'bob');
    assert.equal(seen.startup.clientInfo.parameters.database, 'shop');
    assert.equal(seen.startup.clientInfo.parameters.application_name, 'tests');
    assert.equal(seen.startup.clientInfo.majorVersion, 3);
    assert.equal(seen.startup.clientInfo.minorVersion, 0);
    assert.equal(seen.startup.hasStarted, true);
    assert.equal(seen.startup.isAuthenticated, false);
    assert.equal(seen.startup.tlsInfo, undefined);
    assert.deepEqual(seen.startupLive, seen.startup, 'connection.state agrees with the hook argument');
    assert.deepEqual(seen.credentials, { authMode: 'cleartextPassword', user: 'bob', password: 'pw' });
    assert.equal(seen.validateState.isAuthenticated, false);
    assert.equal(seen.authenticated.isAuthenticated, true);
    // onMessage saw the startup packet (before startup), the password, the query and the
    // Terminate; the last may reach a tokio-driven hook after psql has already exited.
    for (const deadline = Date.now() + 5000; seen.messages.length < 4 && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(seen.messages.map((m) => [m.type, m.hasStarted, m.isAuthenticated]), [
      [0, false, false], [0x70, true, false], [0x51, true, true], [0x58, true, true],
    ]);
  });

  test(`${mode}: md5 credentials carry the salt the client hashed with`, async (t) => {
    let credentials;
    const server = await startServer(mode, () => ({
      async validateCredentials(c) {
        credentials = c;
        return c.hash === await gateway.hashMd5Password(c.user, 'pw', c.salt);
      },
    }));
    t.after(() => server.close());
    const ok = await psql(server.port, ['-c', 'select 1'], { user: 'carol', password: 'pw' });
    assert.match(ok.stderr, /Queries not yet implemented/);
    assert.equal(credentials.authMode, 'md5Password');
    assert.ok(credentials.salt instanceof Uint8Array && credentials.salt.length === 4);
    assert.match(credentials.hash, /^md5[0-9a-f]{32}$/);
  });

  test(`${mode}: onStartup returning true means the hook answers the startup itself`, async (t) => {
    const server = await startServer(mode, () => ({
      authMode: 'md5Password',
      onStartup(state, connection) {
        connection.sendAuthenticationOk();
        connection.sendParameterStatus('server_version', '16.0 (custom)');
        connection.sendReadyForQuery('idle');
        return true;
      },
      onMessage(data, state, connection) {
        if (data[0] !== 0x51) return false;
        connection.sendData(oneRowResult(['who'], [state.clientInfo.parameters.user]));
        return true;
      },
    }));
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'dave' }));
    const greeting = parseMessages(await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z')));
    assert.deepEqual(greeting.map((m) => m.type), ['R', 'S', 'Z'], 'no md5 request, no built-in greeting');
    assert.deepEqual([...greeting[0].body], [0, 0, 0, 0]);
    client.send(frontend.query('select current_user'));
    const reply = parseMessages(await client.waitFor((b) => parseMessages(b).filter((m) => m.type === 'Z').length === 2));
    assert.ok(reply.some((m) => m.type === 'D' && m.body.includes('dave')));
    client.close();
  });

  test(`${mode}: every message of a batch reaches onMessage whole (0.2.4 delivered them empty)`, async (t) => {
    const received = [];
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onMessage(data, { isAuthenticated }, connection) {
        if (!isAuthenticated) return false;
        received.push(Buffer.from(data));
        const type = String.fromCharCode(data[0]);
        const replies = { P: message('1'), B: message('2'), D: message('n'), E: message('C', Buffer.from('SELECT 0\0')), S: message('Z', Buffer.from('I')) };
        if (!replies[type]) return false;
        connection.sendData(replies[type]);
        return true;
      },
    }));
    t.after(() => server.close());
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'erin' });
    await client.connect();
    await client.query('select $1::text', ['hello']);
    await client.end();
    const types = received.map((m) => String.fromCharCode(m[0])).join('');
    assert.equal(types, 'PBDESX', 'Parse, Bind, Describe, Execute, Sync, then Terminate from client.end()');
    for (const m of received) assert.equal(m.length, 1 + m.readInt32BE(1), 'each message is exactly one whole frame');
    assert.ok(received[1].includes(Buffer.from('hello')), 'the Bind carries the parameter');
  });

  test(`${mode}: a read that ends inside a message offers only the whole ones, then the rest`, async (t) => {
    const received = [];
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onMessage(data, { isAuthenticated }, connection) {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        received.push(Buffer.from(data).toString('latin1'));
        connection.sendData(Buffer.concat([message('I'), message('Z', Buffer.from('I'))]));
        return true;
      },
    }));
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'frank' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    const first = frontend.query('select 1');
    const second = frontend.query('select 2');
    // One whole message and the first half of the next in one write, the rest later.
    client.send(Buffer.concat([first, second.subarray(0, 7)]));
    await client.waitFor((b) => parseMessages(b).filter((m) => m.type === 'Z').length === 2);
    client.send(second.subarray(7));
    await client.waitFor((b) => parseMessages(b).filter((m) => m.type === 'Z').length === 3);
    assert.deepEqual(received, [first.toString('latin1'), second.toString('latin1')]);
    client.close();
  });

  test(`${mode}: a hook that throws before authentication gives the client a FATAL error`, async (t) => {
    for (const [hook, failing] of [
      ['onStartup', () => { throw new Error('startup exploded'); }],
      ['validateCredentials', async () => { throw new Error('credential store down'); }],
      ['onMessage', (data) => { if (data[0] === 0) throw new Error('cannot read startup'); return false; }],
      // Even an error whose every property throws becomes a FATAL, not a crash.
      ['onStartup', () => { throw { get message() { throw new Error('no'); }, get code() { throw new Error('no'); } }; }],
    ]) {
      const server = await startServer(mode, () => ({ authMode: 'cleartextPassword', [hook]: failing }));
      const result = await psql(server.port, ['-c', 'select 1'], { user: 'u', password: 'pw' });
      await server.close();
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /FATAL: {2}(startup exploded|credential store down|cannot read startup|a hook failed with an error that cannot be read)/, `${hook}: ${result.stderr}`);
    }
  });

  test(`${mode}: a hook that throws after authentication gives ERROR, and the session goes on`, async (t) => {
    let calls = 0;
    const server = await startServer(mode, () => answerQueries({
      onMessage(data, { isAuthenticated }, connection) {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        calls += 1;
        if (calls === 1) throw new Error('plain error');
        if (calls === 2) return Promise.reject({ severity: 'ERROR', code: '22012', message: 'division by zero', hint: 'do not' });
        connection.sendData(oneRowResult(['n'], ['3']));
        return true;
      },
    }));
    t.after(() => server.close());
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'frank' });
    await client.connect();
    await assert.rejects(client.query('select 1'), (err) => err.code === 'XX000' && err.message === 'plain error');
    await assert.rejects(client.query('select 2'), (err) => err.code === '22012' && err.hint === 'do not');
    assert.deepEqual((await client.query('select 3')).rows, [{ n: '3' }]);
    await client.end();
  });

  test(`${mode}: a throw inside an extended batch errors once and skips to Sync`, async (t) => {
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onMessage(data, { isAuthenticated }) {
        if (isAuthenticated && data[0] === 0x50) throw new Error('cannot parse');
        return false;
      },
    }));
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'g' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    const before = client.received.length;
    client.send(Buffer.concat([frontend.parse('select 1'), frontend.bind(), frontend.describePortal(), frontend.execute(), frontend.sync()]));
    const reply = parseMessages((await client.waitFor((b) => parseMessages(b.subarray(before)).some((m) => m.type === 'Z'))).subarray(before));
    assert.deepEqual(reply.map((m) => m.type), ['E', 'Z']);
    assert.equal(errorFields(reply[0].body).M, 'cannot parse');
    client.close();
  });

  test(`${mode}: detach() hands over the connection, unprocessed bytes first`, async (t) => {
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onMessage(data, state, connection) {
        if (state.hasStarted) return false;
        // After the startup packet, stop speaking PostgreSQL: echo in upper case.
        const socket = connection.detach();
        socket.on('data', (chunk) => socket.write(chunk.toString().toUpperCase()));
        socket.on('end', () => socket.end());
        return true;
      },
    }));
    t.after(() => server.close());
    const client = await rawClient(server.port);
    // The startup packet and the first raw bytes arrive in one write: the bytes after the
    // startup packet were read by the gateway but not processed, and must come out first.
    client.send(Buffer.concat([frontend.startup({ user: 'h' }), Buffer.from('first ')]));
    await client.waitFor((b) => b.toString() === 'FIRST ');
    client.send('second');
    await client.waitFor((b) => b.toString() === 'FIRST SECOND');
    client.socket.end();
    await client.waitClosed();
    assert.equal(client.received.toString(), 'FIRST SECOND');
  });

  test(`${mode}: connection.socket.end() after sendError closes like the README examples`, async (t) => {
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onStartup(state, connection) {
        connection.sendError({ severity: 'FATAL', code: '08000', message: 'ssl connection required' });
        connection.socket.end();
        return true;
      },
    }));
    t.after(() => server.close());
    const result = await psql(server.port, ['-c', 'select 1']);
    assert.match(result.stderr, /FATAL: {2}ssl connection required/);
  });
}

for (const mode of ['js', 'adopted']) {
  test(`${mode}: sockets created without pauseOnConnect work too`, async (t) => {
    const server = await startServer(mode, () => answerQueries(), { pauseOnConnect: false });
    t.after(() => server.close());
    const result = await psql(server.port, ['-Atc', 'select 1']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), '1');
  });

  test(`${mode}: bytes Node read before the connection was created are not lost`, async (t) => {
    const net = await import('node:net');
    const server = net.createServer((socket) => {
      // Create the connection only after the client's startup packet has been read by Node.
      socket.once('data', (chunk) => {
        socket.pause();
        socket.unshift(chunk);
        new gateway.PostgresConnection(socket, { ...answerQueries(), driver: mode === 'adopted' ? 'native' : 'js' });
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const result = await psql(server.address().port, ['-Atc', 'select 1']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), '1');
  });
}

test('js: connection.socket is the socket passed in, and detach() returns it, as in 0.2.4', async (t) => {
  const net = await import('node:net');
  let same;
  const server = net.createServer((socket) => {
    const connection = new gateway.PostgresConnection(socket, {
      authMode: 'none',
      onStartup() {
        same = connection.socket === socket && connection.detach() === socket;
        socket.end();
        return true;
      },
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  await psql(server.address().port, ['-c', 'select 1']);
  assert.equal(same, true);
});

test('adopted: the original socket hears "end" when the client disconnects', async (t) => {
  let ended;
  const ends = new Promise((resolve) => { ended = resolve; });
  const server = await startServer('adopted', () => answerQueries(), {
    onConnection(connection) {
      connection._originalSocket.on('end', ended);
    },
  });
  t.after(() => server.close());
  await psql(server.port, ['-c', 'select 1']);
  await ends;
});

test('native: server.close() ends open sessions with FATAL 57P01', async () => {
  const server = await startServer('native', () => answerQueries());
  const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'i' });
  await client.connect();
  const errored = new Promise((resolve) => client.on('error', resolve));
  assert.equal(server.server.connectionCount, 1);
  await server.close();
  const err = await errored;
  assert.equal(err.code, '57P01');
  assert.equal(server.server.connectionCount, 0);
});

for (const mode of MODES) {
  test(`${mode}: a client that sends a query and closes while an async hook runs gets a clean end`, async (t) => {
    let answered = 0;
    const server = await startServer(mode, () => ({
      authMode: 'none',
      async onMessage(data, { isAuthenticated }, connection) {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        await new Promise((resolve) => setTimeout(resolve, 100)); // the FIN arrives meanwhile
        connection.sendData(oneRowResult(['n'], ['1']));
        answered += 1;
        return true;
      },
    }), { allowHalfOpen: true }); // as PostgreSQL: a half-closed client still gets its answer
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    const seen = client.received.length;
    client.send(frontend.query('select 1'));
    client.socket.end();
    await client.waitClosed();
    const reply = parseMessages(client.received.subarray(seen));
    assert.equal(answered, 1);
    assert.deepEqual(reply.map((m) => m.type).join(''), 'TDCZ', 'the answer, then a clean close');
  });
}

test('createServer: connection.socket, made on first use, hears the close; made after it, says destroyed', async (t) => {
  const seen = [];
  let early;
  let late;
  const server = await startServer('native', () => answerQueries({
    onStartup(state, connection) {
      // The first connection touches its socket in a hook; the second only after it closed.
      if (!early) {
        early = connection;
        connection.socket.on('end', () => seen.push('end'));
        connection.socket.on('close', (hadError) => seen.push(`close ${hadError}`));
      } else if (!late) {
        late = connection;
      }
      return false;
    },
  }));
  t.after(() => server.close());
  const session = async () => {
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    client.send(frontend.terminate());
    await client.waitClosed();
    client.close();
  };
  await session();
  await session();
  // Rust forgets a connection only after queueing its close event for JS, and events reach JS
  // in order: once a third connection's hook has run, JS has heard both closes.
  await waitUntil(() => server.server.connectionCount === 0);
  await session();
  assert.deepEqual(seen, ['end', 'close false']);
  assert.equal(early.socket.destroyed, true);
  assert.equal(late.socket.destroyed, true, 'a stand-in made after the close starts out destroyed');
  assert.equal(late.socket.remoteAddress, '127.0.0.1');
});

async function waitUntil(predicate, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

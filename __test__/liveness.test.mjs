// Nothing hung, nothing unbounded: clients that never read, clients that push while a hook is
// slow, hooks that never settle, clients that leave, destroy() and server.close() under load.
// Memory bounds are measured on this process (the server runs here) over a bounded window.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import pg from 'pg';
import { makeCertificates } from './certs.mjs';
import { MODES, errorFields, frontend, message, oneRowResult, parseMessages, rawClient, run, startServer, until } from './helpers.mjs';

const certs = makeCertificates();

const MiB = 1 << 20;
const openFds = () => fs.readdirSync('/proc/self/fd').length;
const rss = () => process.memoryUsage().rss;

/** The largest RSS growth over `ms`, sampled every 20 ms. */
async function peakGrowth(ms, base) {
  let peak = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    peak = Math.max(peak, rss() - base);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return peak;
}

/** Starts a server and counts its open connections (every mode). */
async function countedServer(mode, options, extra = {}) {
  let open = 0;
  const server = await startServer(mode, options, {
    ...extra,
    onConnection(connection) {
      open += 1;
      connection.socket.on('close', () => { open -= 1; });
      extra.onConnection?.(connection);
    },
  });
  return {
    ...server,
    get open() { return mode === 'native' ? server.server.connectionCount : open; },
  };
}

/** A raw client that has passed authMode 'none' and seen ReadyForQuery. */
async function readyClient(port) {
  const client = await rawClient(port);
  client.send(frontend.startup({ user: 'u' }));
  await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
  return client;
}

async function oneQuery(port) {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'u' });
  await client.connect();
  const { rows } = await client.query({ text: 'select 1', rowMode: 'array' });
  await client.end();
  return rows;
}

const answerOne = (data, { isAuthenticated }, connection) => {
  if (!isAuthenticated || data[0] !== 0x51) return false;
  connection.sendData(oneRowResult(['n'], ['1']));
  return true;
};

for (const mode of MODES) {
  test(`${mode}: a client that never reads costs about one answer, and others are served`, async (t) => {
    const answer = Buffer.concat([oneRowResult(['n'], ['x'.repeat(MiB)])]);
    const server = await countedServer(mode, () => ({
      authMode: 'none',
      onMessage(data, { isAuthenticated }, connection) {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        // A fresh buffer per answer, as a real data source makes (one shared Buffer would cost
        // nothing however often it is queued).
        connection.sendData(data.includes('big') ? Buffer.from(answer) : oneRowResult(['n'], ['1']));
        return true;
      },
    }));
    t.after(() => server.close());
    const base = rss();
    // 20 000 queries (280 KB) of 1 MiB answers each, and the client reads none of them.
    const greedy = await readyClient(server.port);
    greedy.socket.pause();
    greedy.send(Buffer.concat(Array.from({ length: 20_000 }, () => frontend.query('big'))));
    const growth = peakGrowth(3000, base);
    // Meanwhile another client is served.
    assert.deepEqual(await oneQuery(server.port), [['1']]);
    const peak = await growth;
    greedy.close();
    // One answer is 1 MiB; 80c3117 reached 237 MiB here on the adopted driver.
    assert.ok(peak < 64 * MiB, `RSS grew ${Math.round(peak / MiB)} MiB for a client that reads nothing`);
    await until(() => server.open === 0, 10_000, 'the greedy connection to close');
  });

  for (const phase of ['before authentication (validateCredentials)', 'after authentication (onMessage)']) {
    test(`${mode}: a client pushing data while a hook is slow ${phase} is not read ahead unboundedly`, async (t) => {
      let release;
      const released = new Promise((resolve) => { release = resolve; });
      const before = phase.startsWith('before');
      const server = await countedServer(mode, () => ({
        authMode: before ? 'cleartextPassword' : 'none',
        async validateCredentials() {
          await released;
          return true;
        },
        async onMessage(data, { isAuthenticated }, connection) {
          if (!isAuthenticated || data[0] !== 0x51) return false;
          await released;
          connection.sendData(oneRowResult(['n'], ['1']));
          return true;
        },
      }));
      t.after(() => server.close());
      const base = rss();
      const socket = net.connect(server.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.on('error', () => {});
      socket.write(frontend.startup({ user: 'u' }));
      socket.write(before ? frontend.password('pw') : frontend.query('select 1'));
      // Push 8 KiB Query messages for 3 s, as fast as the socket takes them.
      const chunk = Buffer.concat(Array.from({ length: 64 }, () => frontend.query(`select '${'y'.repeat(8000)}'`)));
      let pushed = 0;
      const end = Date.now() + 3000;
      let peak = 0;
      while (Date.now() < end && pushed < 2048 * MiB) {
        if (!socket.write(chunk)) {
          // 'drain' or 100 ms, whichever first, without leaving a listener behind.
          await new Promise((resolve) => {
            const done = () => { clearTimeout(timer); socket.off('drain', done); resolve(); };
            const timer = setTimeout(done, 100);
            socket.once('drain', done);
          });
        }
        pushed += chunk.length;
        peak = Math.max(peak, rss() - base);
      }
      // What the kernel took from the client (Node buffers the rest on the client side).
      const accepted = socket.bytesWritten - socket.writableLength;
      peak = Math.max(peak, await peakGrowth(200, base));
      release();
      socket.destroy();
      assert.ok(accepted < 64 * MiB, `the server read ${Math.round(accepted / MiB)} MiB ahead of a pending hook`);
      assert.ok(peak < 256 * MiB, `RSS grew ${Math.round(peak / MiB)} MiB`);
      await until(() => server.open === 0, 10_000, 'the connection to close');
    });
  }

  test(`${mode}: clients that leave while a hook never settles are let go (fds and count back)`, async (t) => {
    const server = await countedServer(mode, () => ({
      authMode: 'none',
      onMessage(data, { isAuthenticated }) {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        return new Promise(() => {}); // never settles
      },
    }));
    t.after(() => server.close());
    const fdsBefore = openFds();
    const clients = await Promise.all(Array.from({ length: 200 }, () => readyClient(server.port)));
    for (const client of clients) client.send(frontend.query('select 1'));
    await until(() => server.open === 200, 10_000, '200 connections');
    for (const client of clients) client.socket.end();
    // The hook gets 5 s after the client's FIN (a half-closed client may still want its
    // answer); then the connection goes.
    await until(() => server.open === 0, 15_000, `connections to close (open: ${server.open})`);
    await until(() => openFds() <= fdsBefore + 5, 5000, `fds back to ${fdsBefore} (now ${openFds()})`);
  });

  test(`${mode}: destroy() during a hook that never settles closes the connection and emits 'close'`, async (t) => {
    const closes = [];
    const server = await countedServer(mode, () => ({
      authMode: 'none',
      onMessage(data, { isAuthenticated }, connection) {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        connection.socket.once('close', () => closes.push('close'));
        setTimeout(() => connection.socket.destroy(), 50);
        return new Promise(() => {});
      },
    }));
    t.after(() => server.close());
    const client = await readyClient(server.port);
    client.send(frontend.query('select 1'));
    await client.waitClosed(5000);
    await until(() => closes.length === 1, 5000, "'close'");
    await until(() => server.open === 0, 5000, 'the count to drop');
  });

  test(`${mode}: a hook result whose then throws, or a revoked Proxy, fails that connection only`, async (t) => {
    const poisoned = () => ({ get then() { throw new Error('then exploded'); } });
    const revoked = () => {
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      return proxy;
    };
    for (const make of [poisoned, revoked]) {
      for (const hook of ['onStartup', 'validateCredentials', 'onAuthenticated', 'onMessage-startup', 'onMessage']) {
        const options = {
          authMode: hook === 'validateCredentials' ? 'cleartextPassword' : 'none',
          onMessage: answerOne,
        };
        if (hook === 'onMessage-startup') options.onMessage = (data) => (data[0] === 0 ? make() : false);
        else if (hook === 'onMessage') options.onMessage = (data, state) => (state.isAuthenticated && data[0] === 0x51 ? make() : false);
        else options[hook] = make;
        const server = await startServer(mode, () => options);
        try {
          const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'u', password: 'pw' });
          client.on('error', () => {});
          const outcome = await client.connect().then(() => client.query('select 1')).then(() => 'ok', (err) => err.message);
          await client.end().catch(() => {});
          // What matters: this client fails, and the process (this test) lives on.
          assert.notEqual(outcome, 'ok', `${make.name} ${hook}`);
        } finally {
          await server.close();
        }
      }
    }
  });

  test(`${mode}: node-postgres connect() then end() at once ends quietly`, async (t) => {
    const server = await startServer(mode, () => ({ authMode: 'none', onMessage: answerOne }));
    t.after(() => server.close());
    const errors = [];
    for (let i = 0; i < 20; i += 1) {
      const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'u' });
      client.on('error', (err) => errors.push(err.message));
      const ended = once(client, 'end');
      // Neither awaited, as in node-postgres' quick-disconnect test: Terminate goes out
      // before the StartupMessage.
      client.connect().catch((err) => errors.push(`connect: ${err.message}`));
      client.end().catch((err) => errors.push(`end: ${err.message}`));
      await ended;
    }
    await new Promise((resolve) => setImmediate(resolve));
    // node-postgres' own quick-disconnect test: a FATAL here reached pg as an 'error' event.
    assert.deepEqual(errors, []);
  });

  test(`${mode}: sendData, detach and proxy after the close do not throw or crash`, async (t) => {
    let saved;
    const server = await countedServer(mode, () => ({
      authMode: 'none',
      onAuthenticated(state, connection) { saved = connection; },
    }));
    t.after(() => server.close());
    const client = await readyClient(server.port);
    client.close();
    await until(() => server.open === 0, 5000, 'the close');
    assert.equal(saved.sendData(Buffer.from('late')), false);
    saved.sendError({ message: 'late' });
    saved.sendReadyForQuery();
    const detached = saved.detach();
    detached.on?.('error', () => {});
    detached.destroy?.();
  });

  test(`${mode}: a startup sent a byte at a time (slowloris) is closed at authTimeout`, async (t) => {
    const server = await startServer(mode, () => ({ authMode: 'none', authTimeout: 500 }));
    t.after(() => server.close());
    const client = await rawClient(server.port);
    const bytes = frontend.startup({ user: 'u'.repeat(200) });
    const started = Date.now();
    let sent = 0;
    const drip = setInterval(() => {
      if (sent < bytes.length && !client.ended) client.send(bytes.subarray(sent, ++sent));
    }, 20);
    t.after(() => clearInterval(drip));
    await client.waitClosed(5000);
    clearInterval(drip);
    const elapsed = Date.now() - started;
    assert.ok(sent < bytes.length, 'closed before the startup was complete');
    assert.ok(elapsed >= 450 && elapsed < 3000, `closed after ${elapsed} ms`);
    assert.equal(client.received.length, 0, 'without a word, as PostgreSQL');
  });

  test(`${mode}: a startup the hooks answered is not cut at authTimeout, and takes messages over 64 KiB`, async (t) => {
    const server = await startServer(mode, () => ({
      authMode: 'md5Password',
      authTimeout: 300,
      onStartup(state, connection) {
        // The README's pattern: the hook authenticates the client itself.
        connection.sendAuthenticationOk();
        connection.sendReadyForQuery('idle');
        return true;
      },
      onMessage(data, state, connection) {
        // As in 0.2.4, the hook took the startup over: the session is not 'authenticated'.
        if (data[0] !== 0x51) return false;
        connection.sendData(oneRowResult(['length'], [data.length]));
        return true;
      },
    }));
    t.after(() => server.close());
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'u' });
    await client.connect();
    await new Promise((resolve) => setTimeout(resolve, 700)); // past authTimeout
    const { rows } = await client.query({ text: `select '${'z'.repeat(100_000)}'`, rowMode: 'array' });
    await client.end();
    assert.equal(Number(rows[0][0]), 5 + "select ''".length + 100_000 + 1);
  });
}

test('createServer: close() with 100 connections whose hooks never settle resolves within its grace period', async () => {
  let hooksWaiting = 0;
  const server = await startServer('native', () => ({
    authMode: 'none',
    onMessage(data, { isAuthenticated }) {
      if (!isAuthenticated || data[0] !== 0x51) return false;
      hooksWaiting += 1;
      return new Promise(() => {});
    },
  }));
  const clients = await Promise.all(Array.from({ length: 100 }, () => readyClient(server.port)));
  for (const client of clients) client.send(frontend.query('select 1'));
  // Wait for the hooks, not the sockets: a Query not yet handed to its hook leaves the
  // connection idle, and close() rightly ends idle connections at once.
  await until(() => hooksWaiting === 100, 10_000, '100 hooks waiting');
  const started = Date.now();
  await server.server.close({ gracePeriod: 1000 });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900 && elapsed < 5000, `close() took ${elapsed} ms`);
  assert.equal(server.server.connectionCount, 0);
  await Promise.all(clients.map((c) => c.waitClosed(5000)));
  const terminated = clients.filter((c) => parseMessages(c.received).some((m) => m.type === 'E' && errorFields(m.body).C === '57P01'));
  assert.equal(terminated.length, 100, 'each client was told 57P01');
});

test('createServer: close() ends idle connections at once with 57P01', async () => {
  const server = await startServer('native', () => ({ authMode: 'none' }));
  const clients = await Promise.all(Array.from({ length: 100 }, () => readyClient(server.port)));
  const started = Date.now();
  await server.server.close({ gracePeriod: 10_000 });
  assert.ok(Date.now() - started < 2000);
  await Promise.all(clients.map((c) => c.waitClosed(5000)));
  for (const client of clients) {
    const errors = parseMessages(client.received).filter((m) => m.type === 'E').map((m) => errorFields(m.body).C);
    assert.deepEqual(errors, ['57P01']);
  }
});

for (const mode of ['adopted', 'native']) {
  test(`${mode}: connection.socket emits 'drain' after a write that returned false`, async (t) => {
    let drained;
    let wrote;
    const written = new Promise((resolve) => { wrote = resolve; });
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onMessage(data, { isAuthenticated }, connection) {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        const socket = connection.socket;
        let ok = true;
        for (let i = 0; i < 32 && ok; i += 1) ok = socket.write(message('N', Buffer.alloc(512 * 1024, 0x41)));
        drained = ok ? Promise.reject(new Error('write never returned false')) : once(socket, 'drain');
        drained.catch(() => {});
        connection.sendData(oneRowResult(['n'], ['1']));
        wrote();
        return true;
      },
    }));
    t.after(() => server.close());
    const client = await readyClient(server.port);
    client.socket.pause(); // reads nothing until the hook has written
    client.send(frontend.query('select 1'));
    await written;
    client.socket.resume();
    await drained;
    client.close();
  });
}

for (const mode of ['js', 'adopted']) {
  test(`${mode}: authMode 'certificate' without tls refuses each client with FATAL 08000 and warns once`, async (t) => {
    const warnings = [];
    const onWarning = (w) => warnings.push(w.message);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    const server = await startServer(mode, () => ({ authMode: 'certificate' }));
    t.after(() => server.close());
    for (let i = 0; i < 2; i += 1) {
      const client = await rawClient(server.port);
      client.send(frontend.startup({ user: 'u' }));
      await client.waitClosed(5000);
      const [error] = parseMessages(client.received).filter((m) => m.type === 'E').map((m) => errorFields(m.body));
      assert.equal(error.C, '08000');
      assert.equal(error.M, "ssl connection required when auth mode is 'certificate'");
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(warnings.filter((w) => /certificate/.test(w)).length <= 1);
  });
}

for (const mode of MODES) {
  test(`${mode}: a hook that never settles, in any phase, costs its connection only until the client leaves`, async (t) => {
    const never = () => new Promise(() => {});
    const phases = {
      tls: { tls: never },
      onTlsUpgrade: { tls: certs.localhost, onTlsUpgrade: never },
      onStartup: { onStartup: never },
      'onMessage (startup)': { onMessage: (data) => (data[0] === 0 ? never() : false) },
      validateCredentials: { authMode: 'cleartextPassword', validateCredentials: never },
      onAuthenticated: { onAuthenticated: never },
      'onMessage (query)': { onMessage: (data, state) => (state.isAuthenticated && data[0] === 0x51 ? never() : false) },
    };
    await Promise.all(Object.entries(phases).map(async ([phase, hooks]) => {
      const server = await countedServer(mode, () => ({ authMode: 'none', ...hooks }));
      try {
        // psql gives up after 2 s (or, past authentication, sends its query and is stopped by
        // `timeout`) and leaves; the server must let the connection go.
        const tls = 'tls' in hooks;
        const result = await run('timeout', ['3', 'psql', '-X', '-h', '127.0.0.1', '-p', String(server.port), '-U', 'u', '-d', 'postgres', '-c', 'select 1'], {
          env: { PGCONNECT_TIMEOUT: '2', PGSSLMODE: tls ? 'require' : 'disable', PGPASSWORD: 'pw' },
        });
        assert.notEqual(result.code, 0, `${phase}: psql cannot have succeeded`);
        await until(() => server.open === 0, 10_000, `${phase}: the connection to go (open: ${server.open})`);
      } finally {
        await server.close();
      }
    }));
  });
}

for (const mode of ['adopted', 'native']) {
  test(`${mode}: a detached stream that ended its side still reads the client to the end`, async (t) => {
    let got;
    const received = new Promise((resolve) => { got = resolve; });
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onStartup(state, connection) {
        const stream = connection.detach();
        let data = '';
        stream.on('data', (chunk) => { data += chunk; });
        stream.on('end', () => got(data));
        stream.end('bye');
        return true;
      },
    }), { allowHalfOpen: true });
    t.after(() => server.close());
    const client = net.connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
    await once(client, 'connect');
    client.write(frontend.startup({ user: 'u' }));
    const [first] = await once(client, 'data');
    assert.equal(String(first), 'bye');
    await once(client, 'end'); // the server's side is closed; ours is still open
    client.end('sent after the server ended its side');
    assert.equal(await received, 'sent after the server ended its side');
    client.destroy();
  });
}

test('createServer: while close() drains, connectionCount counts the connections left and their hooks still run', async () => {
  let release;
  let running = false;
  const released = new Promise((resolve) => { release = resolve; });
  const server = await startServer('native', () => ({
    authMode: 'none',
    async onMessage(data, { isAuthenticated }, connection) {
      if (!isAuthenticated || data[0] !== 0x51) return false;
      running = true;
      await released;
      connection.sendData(oneRowResult(['answer'], ['late']));
      return true;
    },
  }));
  const client = await readyClient(server.port);
  client.send(frontend.query('select 1'));
  // The query's hook runs (a hook that has not started yet is not waited for by close()).
  await until(() => running, 10_000, 'the hook runs');
  const closing = server.server.close({ gracePeriod: 5000 });
  assert.equal(server.server.connectionCount, 1, 'the draining connection is still counted');
  await until(() => server.server.connectionCount === 1, 1000, 'still counted while the hook runs');
  release();
  await closing;
  assert.equal(server.server.connectionCount, 0);
  const received = await client.waitClosed(5000);
  const messages = parseMessages(received);
  assert.ok(messages.some((m) => m.type === 'D'), 'the hook finished its answer during the drain');
  assert.ok(messages.some((m) => m.type === 'E' && errorFields(m.body).C === '57P01'), 'then 57P01');
});

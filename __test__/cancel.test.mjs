// Cancel requests: every connection gets a process id no other live connection has; a
// CancelRequest with the right key, arriving on any connection of any gateway in the process,
// reaches `onCancel` of the connection it names (and only it); through proxy(), real clients'
// cancels stop the query on a real PostgreSQL, which never shows its own key to the client.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import postgres from 'postgres';
import pg from 'pg';
import { startPostgres } from './postgres.mjs';
import { MODES, frontend, parseMessages, run, startServer } from './helpers.mjs';

const CANCEL_REQUEST_CODE = 80877102;

/** Logs in (authMode none) as `name` and returns the BackendKeyData it got. */
async function login(port, name) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let received = Buffer.alloc(0);
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no ReadyForQuery`)), 10000);
    socket.on('data', (d) => {
      received = Buffer.concat([received, d]);
      const messages = parseMessages(received);
      const key = messages.find((m) => m.type === 'K');
      if (messages.some((m) => m.type === 'Z') && key) {
        clearTimeout(timer);
        resolve({ processId: key.body.readInt32BE(0), secret: key.body.subarray(4) });
      }
    });
    socket.on('error', reject);
  });
  socket.write(frontend.startup({ user: 'u', application_name: name }));
  return { socket, ...(await ready) };
}

/** Sends a CancelRequest on a new connection and waits for the server to close it. */
async function sendCancel(port, processId, secret) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const body = Buffer.alloc(8);
  body.writeInt32BE(processId, 0);
  socket.write(frontend.special(CANCEL_REQUEST_CODE, Buffer.concat([body.subarray(0, 4), secret])));
  let answered = 0;
  socket.on('data', (d) => { answered += d.length; });
  await Promise.race([once(socket, 'close'), new Promise((_, reject) => setTimeout(() => reject(new Error('cancel connection not closed')), 5000))]);
  return answered;
}

/** A promise for the next `count` onCancel calls, by application_name. */
function cancelLog() {
  const calls = [];
  let waiter = null;
  return {
    calls,
    hook(state, connection) {
      assert.equal(typeof connection.sendData, 'function', 'the connection object is passed');
      calls.push(state.clientInfo.parameters.application_name);
      waiter?.();
    },
    async waitFor(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (calls.length < count) {
        if (Date.now() > deadline) throw new Error(`onCancel: ${calls.length} of ${count} calls`);
        await new Promise((resolve) => { waiter = resolve; setTimeout(resolve, 50); });
      }
    },
  };
}

for (const mode of MODES) {
  test(`${mode}: onCancel reaches the right connection among 50, a wrong key none`, async (t) => {
    const log = cancelLog();
    const server = await startServer(mode, () => ({ authMode: 'none', onCancel: log.hook }));
    t.after(() => server.close());
    const clients = [];
    for (let i = 0; i < 50; i++) clients.push(await login(server.port, `c${i}`));
    t.after(() => clients.forEach((c) => c.socket.destroy()));
    assert.equal(new Set(clients.map((c) => c.processId)).size, 50, 'process ids are unique');

    const target = clients[17];
    const wrong = Buffer.from(target.secret);
    wrong[0] ^= 1;
    assert.equal(await sendCancel(server.port, target.processId, wrong), 0, 'no answer to a cancel');
    assert.equal(await sendCancel(server.port, target.processId + 100000, target.secret), 0);
    // The right key afterwards: if a wrong one had counted, it would show up first.
    assert.equal(await sendCancel(server.port, target.processId, target.secret), 0);
    await log.waitFor(1);
    assert.deepEqual(log.calls, ['c17']);
    await sendCancel(server.port, clients[3].processId, clients[3].secret);
    await log.waitFor(2);
    assert.deepEqual(log.calls, ['c17', 'c3']);
  });
}

test('a cancel arriving on another gateway of the process reaches the connection; a closed one is forgotten', async (t) => {
  const log = cancelLog();
  const serverSide = [];
  const js = await startServer('js', () => ({ authMode: 'none', onCancel: log.hook }), {
    onConnection: (connection) => serverSide.push(once(connection.socket, 'close')),
  });
  const native = await startServer('native', () => ({ authMode: 'none', onCancel: log.hook }));
  t.after(() => Promise.all([js.close(), native.close()]));
  const onJs = await login(js.port, 'on-js');
  const onNative = await login(native.port, 'on-native');
  await sendCancel(native.port, onJs.processId, onJs.secret);
  await sendCancel(js.port, onNative.processId, onNative.secret);
  await log.waitFor(2);
  assert.deepEqual(log.calls.sort(), ['on-js', 'on-native']);
  onJs.socket.destroy();
  // The gateway's side of it has closed, so its key is free (serverSide[0] is on-js's).
  await Promise.race([serverSide[0], new Promise((_, reject) => setTimeout(() => reject(new Error('not closed')), 5000))]);
  const later = await login(js.port, 'later');
  await sendCancel(js.port, onJs.processId, onJs.secret);
  await sendCancel(js.port, later.processId, later.secret);
  await log.waitFor(3);
  assert.deepEqual(log.calls.slice(2), ['later'], 'the stale key cancelled nothing');
  later.socket.destroy();
  onNative.socket.destroy();
});

test('detached connections still hear of cancels', async (t) => {
  for (const mode of MODES) {
    const log = cancelLog();
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onAuthenticated(state, connection) { connection.detach(); },
      onCancel: log.hook,
    }));
    const client = await login(server.port, `detached-${mode}`);
    await sendCancel(server.port, client.processId, client.secret);
    await log.waitFor(1);
    assert.deepEqual(log.calls, [`detached-${mode}`]);
    client.socket.destroy();
    await server.close();
  }
});

/** A gateway that proxies every client to `upstream` with `startup: true`. */
function proxyingOptions(upstream, log) {
  return () => ({
    authMode: 'none',
    onStartup(state, connection) {
      connection.proxy({ host: '127.0.0.1', port: upstream.port, startup: true });
      return true;
    },
    onCancel: log?.hook,
  });
}

/** A real PostgreSQL and a client to watch it; stopped in that order after the test. */
async function upstreamWithAdmin(t) {
  const upstream = await startPostgres();
  const admin = new pg.Client({ host: '127.0.0.1', port: upstream.port, user: 'postgres', password: upstream.password, database: 'postgres' });
  admin.on('error', () => {});
  t.after(async () => {
    await admin.end().catch(() => {});
    await upstream.stop();
  });
  await admin.connect();
  return { upstream, admin };
}

async function activeSleeps(admin) {
  const { rows } = await admin.query("select count(*)::int as n from pg_stat_activity where query like 'select pg_sleep(30)%' and state = 'active'");
  return rows[0].n;
}

async function waitUntil(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('through proxy(), psql, postgres.js, asyncpg and pgjdbc cancel pg_sleep(30) on a real PostgreSQL', { timeout: 300000 }, async (t) => {
  const { upstream, admin } = await upstreamWithAdmin(t);
  const env = { PGPASSWORD: upstream.password, PGSSLMODE: 'disable' };

  for (const mode of MODES) {
    const server = await startServer(mode, proxyingOptions(upstream));
    try {
      // The client sees the gateway's key, never the upstream's.
      const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: upstream.password, database: 'postgres' });
      await client.connect();
      const upstreamPid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid;
      assert.notEqual(client.processID, upstreamPid, `${mode}: the upstream's process id is not shown`);
      await client.end();

      // psql, interrupted with SIGINT while the query runs.
      const started = Date.now();
      const child = spawn('psql', ['-X', '-h', '127.0.0.1', '-p', String(server.port), '-U', 'postgres', '-d', 'postgres', '-c', 'select pg_sleep(30)'], {
        env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      await waitUntil(async () => (await activeSleeps(admin)) === 1, 10000, `${mode}: psql's query runs`);
      const signalled = Date.now();
      child.kill('SIGINT');
      const [code] = await once(child, 'exit');
      assert.notEqual(code, 0);
      assert.match(stderr, /canceling statement due to user request/, `${mode}: ${stderr}`);
      assert.ok(Date.now() - signalled < 2000, `${mode}: psql's cancel took ${Date.now() - signalled} ms`);
      assert.ok(Date.now() - started < 15000);
      await waitUntil(async () => (await activeSleeps(admin)) === 0, 5000, `${mode}: the upstream is idle after psql's cancel`);

      // postgres.js query.cancel().
      const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'postgres', pass: upstream.password, database: 'postgres', max: 1 });
      const query = sql`select pg_sleep(30)`;
      const settled = query.then(() => null, (err) => err);
      await waitUntil(async () => (await activeSleeps(admin)) === 1, 10000, `${mode}: postgres.js's query runs`);
      query.cancel();
      const err = await Promise.race([settled, new Promise((resolve) => setTimeout(() => resolve('not cancelled'), 3000))]);
      assert.equal(err?.code, '57014', `${mode}: postgres.js: ${err}`);
      await sql.end();
      await waitUntil(async () => (await activeSleeps(admin)) === 0, 5000, `${mode}: the upstream is idle after postgres.js's cancel`);
    } finally {
      await server.close();
    }
  }

  // asyncpg (timeout=) and pgjdbc (setQueryTimeout) against the native listener.
  const server = await startServer('native', proxyingOptions(upstream));
  t.after(() => server.close());
  const asyncpgScript = `
import sys, asyncio, time, asyncpg
async def main(port, password):
    conn = await asyncpg.connect(host="127.0.0.1", port=int(port), user="postgres", password=password, database="postgres", ssl=False)
    started = time.monotonic()
    try:
        await conn.fetch("select pg_sleep(30)", timeout=1)
        print("not cancelled")
    except asyncio.TimeoutError:
        print("cancelled", round(time.monotonic() - started, 1))
    print(await conn.fetchval("select 1"))
    await conn.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
`;
  const asyncpg = await run('python3', ['-c', asyncpgScript, String(server.port), upstream.password], { timeout: 60000 });
  assert.match(asyncpg.stdout, /^cancelled (1\.\d|2\.0)\n1\n$/, asyncpg.stdout + asyncpg.stderr);
  assert.equal(await activeSleeps(admin), 0, 'asyncpg: the upstream is idle');

  const jdbc = await run('java', ['-cp', '/usr/share/java/postgresql.jar', new URL('./clients/JdbcCancel.java', import.meta.url).pathname,
    `jdbc:postgresql://127.0.0.1:${server.port}/postgres?sslmode=disable`, 'postgres', upstream.password], { timeout: 120000 });
  assert.match(jdbc.stdout, /^57014 in [0-9]+ ms\nok\n$/, jdbc.stdout + jdbc.stderr);
  const ms = Number(/in (\d+) ms/.exec(jdbc.stdout)[1]);
  assert.ok(ms < 2500, `pgjdbc's query timeout of 1 s took ${ms} ms`);
  await waitUntil(async () => (await activeSleeps(admin)) === 0, 5000, 'pgjdbc: the upstream is idle');
});

test('a proxied connection\'s onCancel runs too, and a wrong key forwards nothing', async (t) => {
  const { upstream, admin } = await upstreamWithAdmin(t);
  const log = cancelLog();
  const server = await startServer('native', proxyingOptions(upstream, log));
  t.after(() => server.close());
  const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: upstream.password, database: 'postgres', application_name: 'proxied' });
  await client.connect();
  const running = client.query('select pg_sleep(30)').then(() => null, (err) => err);
  await waitUntil(async () => (await activeSleeps(admin)) === 1, 10000, 'the query runs');
  const wrong = Buffer.alloc(4);
  wrong.writeInt32BE(client.secretKey ^ 1);
  await sendCancel(server.port, client.processID, wrong);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(await activeSleeps(admin), 1, 'a wrong key cancels nothing');
  const right = Buffer.alloc(4);
  right.writeInt32BE(client.secretKey);
  await sendCancel(server.port, client.processID, right);
  const err = await running;
  assert.equal(err?.code, '57014');
  await log.waitFor(1);
  assert.deepEqual(log.calls, ['proxied']);
  await client.end();
});

test('a detach() proxy forwards the upstream\'s own cancel keys from onMessage (the README\'s way)', { timeout: 120000 }, async (t) => {
  const { upstream, admin } = await upstreamWithAdmin(t);
  const { createStartupMessage } = await import('../index.js');
  for (const mode of MODES) {
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onMessage(data, state, connection) {
        // The README's snippet: a CancelRequest whose key came from the upstream.
        if (!state.hasStarted && data.length === 16 && data.readInt32BE(4) === 80877102) {
          net.connect(upstream.port, '127.0.0.1').on('error', () => {}).end(data);
          connection.socket.end();
          return true;
        }
        return false;
      },
      onStartup(state, connection) {
        const socket = connection.detach();
        const upstreamSocket = net.connect(upstream.port, '127.0.0.1');
        upstreamSocket.write(createStartupMessage(state.clientInfo));
        socket.pipe(upstreamSocket).pipe(socket);
        socket.on('error', () => upstreamSocket.destroy());
        upstreamSocket.on('error', () => socket.destroy());
        return true;
      },
    }));
    try {
      const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: upstream.password, database: 'postgres' });
      await client.connect();
      const running = client.query('select pg_sleep(30)').then(() => null, (err) => err);
      await waitUntil(async () => (await activeSleeps(admin)) === 1, 10000, `${mode}: the query runs`);
      const key = Buffer.alloc(4);
      key.writeInt32BE(client.secretKey);
      assert.equal(await sendCancel(server.port, client.processID, key), 0, `${mode}: no answer to the cancel`);
      assert.equal((await running)?.code, '57014', mode);
      await client.end();
    } finally {
      await server.close();
    }
  }
});

test('through a TLS-terminating proxy() chosen in onTlsUpgrade, a plaintext cancel stops the query', { timeout: 120000 }, async (t) => {
  const { makeCertificates } = await import('./certs.mjs');
  const certs = makeCertificates();
  const { upstream, admin } = await upstreamWithAdmin(t);
  for (const mode of MODES) {
    const server = await startServer(mode, () => ({
      tls: certs.wildcard,
      onTlsUpgrade(state, connection) {
        // The client's own StartupMessage follows to the upstream.
        connection.proxy({ host: '127.0.0.1', port: upstream.port });
      },
    }));
    try {
      const client = new pg.Client({
        host: '127.0.0.1', port: server.port, user: 'postgres', password: upstream.password, database: 'postgres',
        ssl: { ca: certs.ca, servername: 'alpha.db.example.com' },
      });
      await client.connect();
      const upstreamPid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid;
      assert.notEqual(client.processID, upstreamPid, `${mode}: the upstream's key is not shown`);
      const running = client.query('select pg_sleep(30)').then(() => null, (err) => err);
      await waitUntil(async () => (await activeSleeps(admin)) === 1, 10000, `${mode}: the query runs`);
      const key = Buffer.alloc(4);
      key.writeInt32BE(client.secretKey);
      // As libpq 15 sends it: a new plain TCP connection, whatever the first one used.
      await sendCancel(server.port, client.processID, key);
      assert.equal((await running)?.code, '57014', mode);
      await client.end();
    } finally {
      await server.close();
    }
  }
});

test('a proxy() started after the gateway authenticated the client keeps the gateway\'s key', { timeout: 120000 }, async (t) => {
  const upstream = await startPostgres({ auth: 'trust' });
  t.after(() => upstream.stop());
  for (const mode of MODES) {
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onAuthenticated(state, connection) {
        connection.proxy({ host: '127.0.0.1', port: upstream.port, startup: true });
      },
    }));
    try {
      const socket = net.connect(server.port, '127.0.0.1');
      await once(socket, 'connect');
      let received = Buffer.alloc(0);
      socket.on('data', (d) => { received = Buffer.concat([received, d]); });
      const until = async (predicate, what) => {
        for (const deadline = Date.now() + 10000; !predicate(parseMessages(received));) {
          assert.ok(Date.now() < deadline, `${mode}: ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };
      socket.write(frontend.startup({ user: 'postgres', database: 'postgres' }));
      // The gateway's own startup answer, then the upstream's to the replayed StartupMessage.
      await until((messages) => messages.filter((m) => m.type === 'Z').length === 2, 'both ReadyForQuery');
      const keys = parseMessages(received).filter((m) => m.type === 'K').map((m) => m.body.toString('hex'));
      assert.equal(keys.length, 2);
      assert.equal(keys[1], keys[0], `${mode}: the upstream's BackendKeyData became the gateway's`);
      socket.write(frontend.query('select pg_sleep(30)'));
      const key = Buffer.from(keys[0], 'hex');
      // A cancel that overtakes the query's start cancels nothing: send until the error comes.
      for (const deadline = Date.now() + 10000; !parseMessages(received).some((m) => m.type === 'E');) {
        assert.ok(Date.now() < deadline, `${mode}: the cancelled query's error`);
        await sendCancel(server.port, key.readInt32BE(0), key.subarray(4));
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const error = parseMessages(received).find((m) => m.type === 'E');
      assert.match(error.body.toString(), /57014/, mode);
      socket.destroy();
    } finally {
      await server.close();
    }
  }
});

// `pg-gateway-native serve`: one PGlite for many real clients. Each isolation test fails on a
// server that shares one PGlite session naively (pglite-socket's way): statements of the same
// name collide, settings and uncommitted rows leak, a blocking driver deadlocks.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { root, run, psql, sleep, rawClient, frontend, message, parseMessages, errorFields } from './helpers.mjs';

const require = createRequire(import.meta.url);
const BIN = path.join(root, 'bin', 'pg-gateway-native.js');
const PASSWORD = 'postgres';

/** Starts `pg-gateway-native serve --port 0 ...args` and waits for its "listening on" line. */
async function startServe(args = []) {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--log-level', 'debug', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 60000);
    const check = () => {
      const match = /listening on [^\s]+:(\d+)/.exec(output);
      if (match) { clearTimeout(timer); resolve(Number(match[1])); }
    };
    child.stderr.on('data', check);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`serve exited with ${code}:\n${output}`)); });
  });
  return {
    port,
    child,
    get output() { return output; },
    client: (extra = {}) => new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: PASSWORD, database: 'postgres', ...extra }),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode;
      child.kill(signal);
      const [code] = await once(child, 'exit');
      return code;
    },
  };
}

function pgbench(port, args) {
  return run('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], {
    env: { PGPASSWORD: PASSWORD, PGSSLMODE: 'disable' },
    timeout: 120000,
  });
}

const connected = async (client) => { await client.connect(); return client; };

test('serve --help, --version and bad options', async () => {
  const help = await run(process.execPath, [BIN, 'serve', '--help']);
  assert.equal(help.code, 0);
  for (const option of ['--data-dir', '--auth', '--max-connections', '--idle-in-transaction-timeout', '--tls-cert', '--log-level']) {
    assert.match(help.stdout, new RegExp(option));
  }
  const version = await run(process.execPath, [BIN, '--version']);
  assert.match(version.stdout, /^pg-gateway-native \d+\.\d+\.\d+/);
  const bad = await run(process.execPath, [BIN, 'serve', '--port', 'x']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--port must be a whole number/);
  const auth = await run(process.execPath, [BIN, 'serve', '--auth', 'kerberos']);
  assert.equal(auth.code, 2);
  assert.match(auth.stderr, /--auth must be scram, md5, password or none/);
  const unknown = await run(process.execPath, [BIN, 'frobnicate']);
  assert.equal(unknown.code, 2);
});

test('many clients on one PGlite, each with its own statements, settings and transactions', { timeout: 300000 }, async (t) => {
  const server = await startServe();
  t.after(() => server.stop());

  await t.test('psql and pgbench -i; then pgbench -c 8 in simple, extended and prepared modes', async () => {
    const wrong = await psql(server.port, ['-c', 'select 1'], { password: 'wrong' });
    assert.match(wrong.stderr, /password authentication failed for user "postgres"/);
    const init = await pgbench(server.port, ['-i', '-s', '1']);
    assert.equal(init.code, 0, init.stderr);
    // -j 2: each pgbench thread drives 4 connections and prepares with blocking calls, so a
    // prepare must not wait for a client whose transaction that same thread holds up.
    for (const mode of ['simple', 'extended', 'prepared']) {
      const bench = await pgbench(server.port, ['-c', '8', '-j', '2', '-t', '40', '-M', mode]);
      assert.equal(bench.code, 0, `${mode}: ${bench.stderr}`);
      assert.match(bench.stdout, /number of transactions actually processed: 320\/320/, mode);
      assert.match(bench.stdout, /number of failed transactions: 0 /, mode);
    }
    // Each run starts by truncating the history: the last one's 320 transactions are there.
    const count = await psql(server.port, ['-Atc', 'select count(*) from pgbench_history'], { password: PASSWORD });
    assert.equal(count.stdout.trim(), '320');
  });

  await t.test('two clients prepare the same statement name with different SQL', async () => {
    const [a, b] = await Promise.all([connected(server.client()), connected(server.client())]);
    try {
      for (let i = 0; i < 5; i++) {
        const [ra, rb] = await Promise.all([
          a.query({ name: 'same', text: 'select $1::int + 1 as a', values: [i] }),
          b.query({ name: 'same', text: "select $1::text || '!' as b", values: [`x${i}`] }),
        ]);
        assert.deepEqual(ra.rows, [{ a: i + 1 }]);
        assert.deepEqual(rb.rows, [{ b: `x${i}!` }]);
      }
      // Errors name the client's own statement.
      await assert.rejects(a.query({ text: 'select 1', name: 'missing' }).then(() => a.query('execute missing')),
        (err) => /prepared statement "missing" does not exist/.test(err.message));
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  await t.test('a Pool of 10 and postgres.js with max 10, all at once', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: server.port, user: 'postgres', password: PASSWORD, database: 'postgres', max: 10 });
    const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'postgres', password: PASSWORD, database: 'postgres', max: 10 });
    try {
      const work = [];
      for (let i = 0; i < 100; i++) {
        work.push(pool.query({ name: 'by-id', text: 'select aid, $1::int as i from pgbench_accounts where aid = $1', values: [i + 1] })
          .then((r) => assert.deepEqual(r.rows, [{ aid: i + 1, i: i + 1 }])));
        work.push(sql`select ${i}::int as i, count(*)::int as n from pgbench_branches`.then((rows) => assert.deepEqual([...rows], [{ i, n: 1 }])));
      }
      await Promise.all(work);
    } finally {
      await Promise.all([pool.end(), sql.end()]);
    }
  });

  await t.test('psycopg and asyncpg pools, pgjdbc with prepareThreshold=1', async () => {
    const clients = path.join(root, '__test__', 'clients');
    const python = await run('python3', [path.join(clients, 'serve_python.py'), String(server.port)], { timeout: 120000 });
    assert.equal(python.code, 0, python.stderr + python.stdout);
    assert.match(python.stdout, /psycopg ok\nasyncpg ok/);
    const java = await run('java', ['-cp', '/usr/share/java/postgresql.jar', path.join(clients, 'ServeJdbc.java'), String(server.port)], { timeout: 150000 });
    assert.equal(java.code, 0, java.stderr + java.stdout);
    assert.match(java.stdout, /pgjdbc ok/);
  });

  await t.test('a transaction is its client\'s alone until it ends; one left open is rolled back', async () => {
    const setup = await psql(server.port, ['-c', 'create table turns (id int)'], { password: PASSWORD });
    assert.equal(setup.code, 0, setup.stderr);
    const a = await connected(server.client());
    await a.query('begin');
    await a.query('insert into turns values (1)');
    // psql waits for its turn: it must see the row only once committed, never before.
    const reading = psql(server.port, ['-Atc', 'select count(*) from turns'], { password: PASSWORD });
    await sleep(300);
    await a.query('insert into turns values (2)');
    await a.query('commit');
    assert.equal((await reading).stdout.trim(), '2');

    await a.query('begin');
    await a.query('insert into turns values (3)');
    await a.end(); // leaves mid-transaction
    const after = await psql(server.port, ['-Atc', 'select count(*) from turns'], { password: PASSWORD });
    assert.equal(after.stdout.trim(), '2');
  });

  await t.test('settings follow their client: SET and startup parameters never leak', async () => {
    const setup = await psql(server.port, ['-c', 'create schema sa; create schema sb; create table sa.t (v text); create table sb.t (v text);'
      + " insert into sa.t values ('from a'); insert into sb.t values ('from b')"], { password: PASSWORD });
    assert.equal(setup.code, 0, setup.stderr);
    const a = await connected(server.client());
    const b = await connected(server.client({ options: '-c search_path=sb' }));
    const c = postgres({ host: '127.0.0.1', port: server.port, user: 'postgres', password: PASSWORD, database: 'postgres', max: 1, connection: { search_path: 'sb', application_name: 'app-c' } });
    try {
      await a.query('set search_path = sa');
      for (let i = 0; i < 3; i++) {
        const [ra, rb, rc, rd] = await Promise.all([
          a.query('select v from t'),
          b.query('select v from t').catch((err) => ({ rows: [{ v: err.message }] })),
          c`select v, current_setting('application_name') as app from t`,
          a.query("select current_setting('application_name') as app"),
        ]);
        assert.equal(ra.rows[0].v, 'from a');
        assert.equal(rc[0].v, 'from b');
        assert.equal(rc[0].app, 'app-c');
        assert.notEqual(rd.rows[0].app, 'app-c');
        void rb;
      }
    } finally {
      await Promise.all([a.end(), b.end(), c.end()]);
    }
  });

  await t.test('COPY FROM STDIN and COPY TO STDOUT, then the next client is fine', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pggn-copy-'));
    const file = path.join(dir, 'rows.tsv');
    writeFileSync(file, Array.from({ length: 5000 }, (_, i) => `${i}\trow ${i}\n`).join(''));
    const copyIn = await psql(server.port, ['-c', 'create table copied (id int, v text)', '-c', `\\copy copied from '${file}'`], { password: PASSWORD });
    assert.equal(copyIn.code, 0, copyIn.stderr);
    assert.match(copyIn.stdout, /COPY 5000/);
    const copyOut = await psql(server.port, ['-c', 'copy (select * from copied where id < 3 order by id) to stdout with (format csv)'], { password: PASSWORD });
    assert.equal(copyOut.code, 0, copyOut.stderr);
    assert.equal(copyOut.stdout, '0,row 0\n1,row 1\n2,row 2\n');
    const bad = await psql(server.port, ['-c', "\\copy copied from program 'printf \"x\\\\ty\\\\n\"'"], { password: PASSWORD });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid input syntax for type integer/);
    const after = await psql(server.port, ['-Atc', 'select count(*) from copied'], { password: PASSWORD });
    assert.equal(after.stdout.trim(), '5000');
  });

  await t.test('LISTEN in one client, NOTIFY from another', async () => {
    const [a, b] = await Promise.all([connected(server.client()), connected(server.client())]);
    try {
      await a.query('listen jobs');
      const got = new Promise((resolve) => a.on('notification', resolve));
      await b.query("notify jobs, 'hello'");
      const notification = await Promise.race([got, sleep(5000).then(() => null)]);
      assert.equal(notification?.payload, 'hello');
      assert.equal(notification?.channel, 'jobs');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });
});

test('limits: 53300 beyond --max-connections, idle-in-transaction and queue timeouts', { timeout: 120000 }, async (t) => {
  const server = await startServe(['--max-connections', '2', '--idle-in-transaction-timeout', '500', '--queue-timeout', '300']);
  t.after(() => server.stop());
  const a = await connected(server.client());
  const b = await connected(server.client());
  const c = server.client();
  await assert.rejects(c.connect(), (err) => err.code === '53300' && /sorry, too many clients already/.test(err.message));

  // b waits for a's transaction, longer than --queue-timeout: 55P03, and b goes on.
  await a.query('begin');
  await assert.rejects(b.query('select 1'), (err) => err.code === '55P03');
  // a idles in its transaction past the timeout: FATAL 25P03, and the turn is free again.
  const ended = new Promise((resolve) => a.on('error', resolve));
  const error = await Promise.race([ended, sleep(5000).then(() => null)]);
  assert.equal(error?.code, '25P03');
  assert.deepEqual((await b.query('select 1 as x')).rows, [{ x: 1 }]);
  await b.end();
});

test('--data-dir survives SIGTERM during writes, and a second server cannot open it', { timeout: 180000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pggn-data-'));
  const first = await startServe(['--data-dir', dir]);
  t.after(() => first.stop());
  const second = await startServe(['--data-dir', dir]).then(() => null, (err) => err);
  assert.match(String(second?.message), /in use by process/);

  const client = await connected(first.client());
  client.on('error', () => {});
  await client.query('create table w (id int primary key)');
  let acknowledged = 0;
  const writing = (async () => {
    for (let i = 1; i <= 100000; i++) {
      try {
        await client.query('insert into w values ($1)', [i]);
        acknowledged = i;
      } catch {
        return;
      }
    }
  })();
  while (acknowledged < 200) await sleep(20);
  assert.equal(await first.stop('SIGTERM'), 0);
  await writing;

  const again = await startServe(['--data-dir', dir]);
  t.after(() => again.stop());
  const check = await psql(again.port, ['-Atc', 'select count(*), max(id) from w'], { password: PASSWORD });
  assert.equal(check.code, 0, check.stderr);
  const [count, max] = check.stdout.trim().split('|').map(Number);
  assert.ok(count >= acknowledged && count === max, `${count} rows (max ${max}), ${acknowledged} acknowledged`);
  assert.equal(await again.stop(), 0);
});

test('answers do not pile up in the server: 256 MB of rows through it, its memory stays flat', { timeout: 120000 }, async (t) => {
  const server = await startServe();
  t.after(() => server.stop());
  const client = await connected(server.client());
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))[1]) * 1024;
  const big = { text: "select repeat('x', 1048576) from generate_series(1, 32)", rowMode: 'array' };
  // The first two answers grow PGlite's and Node's buffers to their working size.
  for (let i = 0; i < 2; i++) assert.equal((await client.query(big)).rows.length, 32);
  const before = rss();
  for (let i = 0; i < 8; i++) assert.equal((await client.query(big)).rows.length, 32);
  const grown = rss() - before;
  await client.end();
  assert.ok(grown < 96 * 1024 * 1024, `the server grew by ${Math.round(grown / 1048576)} MiB over 256 MiB of answers`);
});

/** Waits until the server's log matches `pattern` (bounded). */
async function logged(server, pattern, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!pattern.test(server.output)) {
    if (Date.now() > deadline) throw new Error(`not logged: ${pattern}\n${server.output}`);
    await sleep(20);
  }
}

test('a cancel drops a statement waiting for its turn with 57014; the client goes on', { timeout: 60000 }, async (t) => {
  const server = await startServe();
  t.after(() => server.stop());
  const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'postgres', pass: PASSWORD, database: 'postgres', max: 1, onnotice: () => {} });
  t.after(() => sql.end({ timeout: 1 }));
  await sql`select 0`; // connected, and its type query done
  const owner = await connected(server.client());
  await owner.query('begin');
  const queued = sql`select 1 as x`.execute();
  await logged(server, /client \d+: waits for client \d+/);
  queued.cancel();
  await assert.rejects(queued, (err) => err.code === '57014');
  await owner.query('commit');
  assert.deepEqual([...(await sql`select 2 as x`)], [{ x: 2 }]);
  await owner.end();
});

test('a client that stops in the middle of a batch loses its turn at the idle timeout; stray COPY messages are ignored', { timeout: 60000 }, async (t) => {
  const server = await startServe(['--auth', 'none', '--idle-in-transaction-timeout', '500']);
  t.after(() => server.stop());
  const raw = await rawClient(server.port);
  t.after(() => raw.close());
  raw.send(frontend.startup({ user: 'postgres', database: 'postgres' }));
  await raw.waitFor((b) => parseMessages(b, { leadingByte: false }).some((m) => m.type === 'Z'));
  // CopyData and CopyDone outside a COPY: ignored, as by PostgreSQL; the session goes on.
  raw.send(Buffer.concat([message('d', Buffer.from('stray')), message('c'), frontend.query('select 41 + 1')]));
  await raw.waitFor((b) => parseMessages(b).filter((m) => m.type === 'Z').length === 2);
  assert.ok(parseMessages(raw.received).some((m) => m.type === 'D' && m.body.includes(Buffer.from('42'))));
  // Parse, then Flush, then nothing: the batch holds PGlite until the idle timeout.
  raw.send(Buffer.concat([frontend.parse('select 1'), message('H')]));
  await raw.waitFor((b) => parseMessages(b).some((m) => m.type === '1'));
  const other = await connected(server.client());
  const started = Date.now();
  assert.deepEqual((await other.query('select 3 as x')).rows, [{ x: 3 }]);
  assert.ok(Date.now() - started < 5000);
  await raw.waitClosed(5000);
  const fatal = parseMessages(raw.received).find((m) => m.type === 'E');
  assert.equal(errorFields(fatal.body).C, '25P03');
  await other.end();
});

test('ParameterStatus follows SET as on PostgreSQL, and only to the client that made the change', { timeout: 60000 }, async (t) => {
  const server = await startServe();
  t.after(() => server.stop());
  const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'postgres', pass: PASSWORD, database: 'postgres', max: 1, connection: { application_name: 'app1' } });
  t.after(() => sql.end({ timeout: 1 }));
  const other = await connected(server.client({ application_name: 'app2' }));
  const seen = [];
  other.connection.on('parameterStatus', (m) => seen.push(`${m.parameterName}=${m.parameterValue}`));
  await sql`select 1`;
  assert.equal(sql.parameters.application_name, 'app1');
  // psql lexes backslashes in literals by this report.
  await sql`set standard_conforming_strings = off`;
  assert.equal(sql.parameters.standard_conforming_strings, 'off');
  await sql`set timezone = 'Asia/Tokyo'`;
  assert.equal(sql.parameters.TimeZone, 'Asia/Tokyo');
  await other.query('select 1');
  await sql`reset standard_conforming_strings`;
  assert.equal(sql.parameters.standard_conforming_strings, 'on');
  await other.query('select 2');
  // The other client was told nothing: its own values it heard at startup, the first client's
  // changes are not its business.
  assert.deepEqual(seen, []);
  await other.end();
});

test('migrations by knex, node-pg-migrate and drizzle-kit, at once, while another client writes', { timeout: 180000 }, async (t) => {
  const server = await startServe();
  t.after(() => server.stop());
  const connection = { host: '127.0.0.1', port: server.port, user: 'postgres', password: PASSWORD, database: 'postgres' };
  const url = `postgresql://postgres:${PASSWORD}@127.0.0.1:${server.port}/postgres`;
  const migrations = path.join(root, '__test__', 'migrations');

  // The bystander: short transactions of its own the whole time, every other one rolled back
  // (on a shared session without turns, its ROLLBACK would undo the migrations' statements).
  const bystander = await connected(server.client());
  await bystander.query('create table bystander (n int)');
  let stop = false;
  let written = 0;
  const writing = (async () => {
    for (let i = 0; !stop; i++) {
      await bystander.query('begin');
      await bystander.query('insert into bystander values ($1)', [i]);
      await bystander.query('select pg_sleep(0.002)');
      if (i % 2 === 0) {
        await bystander.query('commit');
        written += 1;
      } else {
        await bystander.query('rollback');
      }
    }
  })();

  const knex = require('knex')({ client: 'pg', connection, pool: { min: 0, max: 4 } });
  t.after(() => knex.destroy());
  const byKnex = (async () => {
    const [batch, applied] = await knex.migrate.latest({ directory: path.join(migrations, 'knex') });
    assert.equal(batch, 1);
    assert.equal(applied.length, 2);
    await knex.migrate.rollback({ directory: path.join(migrations, 'knex') });
    await knex.migrate.latest({ directory: path.join(migrations, 'knex') });
    await knex('books').insert({ author_id: 1, title: 'The Dispossessed', year: 1974 });
    const rows = await knex('books').join('authors', 'authors.id', 'books.author_id').select('name', 'title');
    assert.deepEqual(rows, [{ name: 'Le Guin', title: 'The Dispossessed' }]);
  })();

  const { runner } = await import('node-pg-migrate');
  const byNodePgMigrate = (async () => {
    const options = { databaseUrl: connection, dir: path.join(migrations, 'node-pg-migrate'), migrationsTable: 'pgmigrations', log: () => {} };
    const up = await runner({ ...options, direction: 'up' });
    assert.deepEqual(up.map((m) => m.name), ['1767225600000_orders']);
    assert.deepEqual(await runner({ ...options, direction: 'up' }), []); // nothing left to run
  })();

  const drizzle = (args) => run(path.join(root, 'node_modules', '.bin', 'drizzle-kit'), args, { env: { DATABASE_URL: url }, timeout: 120000 });
  const byDrizzle = (async () => {
    const config = ['--config', path.join(migrations, 'drizzle', 'drizzle.config.ts')];
    const first = await drizzle(['push', ...config, '--force']);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout + first.stderr, /Changes applied/);
    // A second push reads the catalog back and finds what it made: the introspection is right.
    const second = await drizzle(['push', ...config, '--force']);
    assert.match(second.stdout + second.stderr, /No changes detected/);
  })();

  try {
    await Promise.all([byKnex, byNodePgMigrate, byDrizzle]);
  } finally {
    stop = true;
    await writing;
  }
  const check = await connected(server.client());
  await check.query("insert into orders (total) values (9.5)");
  const before = (await check.query('select updated_at from orders')).rows[0].updated_at;
  await check.query("update orders set state = 'paid'");
  const after = (await check.query('select state, updated_at from orders')).rows[0];
  assert.equal(after.state, 'paid');
  assert.ok(after.updated_at >= before);
  await check.query('insert into app.teams (name) values ($1)', ['core']);
  await check.query('insert into app.members (team_id, email) values (1, $1)', ['a@example.com']);
  assert.equal((await check.query('select role from app.members')).rows[0].role, 'member');
  assert.equal(Number((await check.query('select count(*) from bystander')).rows[0].count), written);
  assert.ok(written > 0);
  await check.end();
  await bystander.end();
});

test('current_user is the user who logged in, with its privileges; a user that is no role is refused (28000)', { timeout: 60000 }, async (t) => {
  const server = await startServe(['--auth', 'none']);
  t.after(() => server.stop());
  const admin = await connected(server.client());
  await admin.query('create role alice login');
  await admin.query('create table secrets (s text)');
  await admin.query('begin');
  const alice = await connected(server.client({ user: 'alice' }));
  const whoAlice = alice.query('select current_user, session_user'); // waits for admin's turn
  assert.deepEqual((await admin.query('select current_user as u')).rows, [{ u: 'postgres' }]);
  await admin.query('commit');
  assert.deepEqual((await whoAlice).rows, [{ current_user: 'alice', session_user: 'alice' }]);
  await assert.rejects(alice.query('select * from secrets'), (err) => err.code === '42501');
  await assert.rejects(alice.query('set role postgres'), (err) => err.code === '42501');
  assert.deepEqual((await admin.query('select count(*)::int as n from secrets')).rows, [{ n: 0 }]);
  // postgres becomes alice for a while: that is its own session's business.
  await admin.query('set role alice');
  assert.deepEqual((await alice.query('select current_user as u')).rows, [{ u: 'alice' }]);
  assert.deepEqual((await admin.query('select current_user as u, session_user as s')).rows, [{ u: 'alice', s: 'postgres' }]);
  await admin.query('reset role');
  assert.deepEqual((await admin.query('select current_user as u')).rows, [{ u: 'postgres' }]);
  const nobody = await connected(server.client({ user: 'nobody' }));
  nobody.on('error', () => {});
  await assert.rejects(nobody.query('select 1'), (err) => err.code === '28000' && /role "nobody" does not exist/.test(err.message));
  await alice.end();
  await admin.end();

  // A configured user is made a role at start.
  const other = await startServe(['--user', 'carol', '--password', 'secret']);
  t.after(() => other.stop());
  const carol = await connected(other.client({ user: 'carol', password: 'secret' }));
  assert.deepEqual((await carol.query('select current_user as u')).rows, [{ u: 'carol' }]);
  await carol.end();
});

test('--socket-dir: psql over the Unix socket; a socket file left by a killed server is taken over', { timeout: 120000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pggn-sock-'));
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
  const overSocket = () => run('psql', ['-X', '-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-Atc', 'select current_user'], {
    env: { PGPASSWORD: PASSWORD, PGCONNECT_TIMEOUT: '10' },
  });
  const first = await startServe(['--port', String(port), '--socket-dir', dir]);
  t.after(() => first.stop());
  await logged(first, new RegExp(`listening on Unix socket ${dir}/\\.s\\.PGSQL\\.${port}`));
  const answer = await overSocket();
  assert.equal(answer.code, 0, answer.stderr);
  assert.equal(answer.stdout.trim(), 'postgres');
  await first.stop('SIGKILL');
  assert.ok(existsSync(path.join(dir, `.s.PGSQL.${port}`)), 'the killed server left its socket file');
  const second = await startServe(['--port', String(port), '--socket-dir', dir]);
  t.after(() => second.stop());
  await logged(second, /listening on Unix socket/);
  assert.equal((await overSocket()).stdout.trim(), 'postgres');
  assert.equal(await second.stop(), 0);
  assert.ok(!existsSync(path.join(dir, `.s.PGSQL.${port}`)), 'a clean stop removes the socket file');
});

test("one client's DEALLOCATE ALL, DISCARD ALL or UNLISTEN * (a pool's reset) leaves the others' statements and listens alone", { timeout: 60000 }, async (t) => {
  const server = await startServe();
  t.after(() => server.stop());
  const a = await connected(server.client());
  const b = await connected(server.client());
  const named = { name: 'mine', text: 'select $1::int + 1 as n', values: [1] };
  assert.deepEqual((await a.query(named)).rows, [{ n: 2 }]);
  await a.query('listen jobs');
  const heard = [];
  a.on('notification', (n) => heard.push(n.payload));
  // asyncpg's pool resets a connection with a multi-statement query like this one.
  await b.query('select pg_advisory_unlock_all(); close all; unlisten *; reset all; deallocate all');
  assert.deepEqual((await a.query({ ...named, values: [41] })).rows, [{ n: 42 }]); // pg does not parse 'mine' again
  await b.query("notify jobs, 'one'");
  await b.query('discard all');
  assert.deepEqual((await a.query({ ...named, values: [2] })).rows, [{ n: 3 }]);
  await b.query("select pg_notify('jobs', 'two')");
  await a.query('select 1'); // a notification comes with an answer at the latest
  assert.deepEqual(heard, ['one', 'two']);
  await a.end();
  await b.end();
});

test('hostile neighbours: comment-hidden SET, backslashes under standard_conforming_strings=off, DISCARD ALL as another user, a failing statement and a LISTEN in a literal before a reset', { timeout: 120000 }, async (t) => {
  const server = await startServe(['--auth', 'none']);
  t.after(() => server.stop());
  const admin = await connected(server.client());
  await admin.query('create role alice login');
  // A SET behind a comment still follows its client only.
  const sneaky = await connected(server.client());
  await sneaky.query('/* tidy */ SET search_path = nowhere');
  assert.deepEqual((await admin.query('show search_path')).rows, [{ search_path: 'public' }]); // PGlite's default
  // Under the previous client's standard_conforming_strings=off, a value ending in a backslash
  // still reaches the next client intact.
  await sneaky.query('set standard_conforming_strings = off');
  const windows = await connected(server.client({ application_name: 'C:\\tools\\' }));
  assert.deepEqual((await windows.query('show application_name')).rows, [{ application_name: 'C:\\tools\\' }]);
  // alice stays alice after resetting her session; she is told she is no superuser.
  const alice = postgres({ host: '127.0.0.1', port: server.port, user: 'alice', database: 'postgres', max: 1 });
  t.after(() => alice.end({ timeout: 1 }));
  assert.equal((await alice`select current_user as u`)[0].u, 'alice');
  assert.equal(alice.parameters.is_superuser, 'off');
  await alice`discard all`;
  assert.equal((await alice`select current_user as u`)[0].u, 'alice');
  await alice`set session authorization default`;
  assert.equal((await alice`select session_user as u`)[0].u, 'alice');
  // A statement that failed to parse and a LISTEN in a string literal do not spoil another
  // client's reset for the rest.
  await assert.rejects(admin.query({ name: 'bad', text: 'selec 1' }));
  assert.deepEqual((await admin.query({ name: 'good', text: 'select 7 as n' })).rows, [{ n: 7 }]);
  await admin.query('listen jobs');
  const heard = [];
  admin.on('notification', (n) => heard.push(n.payload));
  await windows.query(`select 'listen "' as x`);
  await sneaky.query('discard all');
  assert.deepEqual((await admin.query({ name: 'good', text: 'select 7 as n' })).rows, [{ n: 7 }]);
  await windows.query("notify jobs, 'after'");
  await admin.query('select 1');
  assert.deepEqual(heard, ['after']);
  for (const c of [admin, sneaky, windows]) await c.end();
});

test('a prepared SET run again without a new Parse still follows its client', { timeout: 60000 }, async (t) => {
  const server = await startServe(['--auth', 'none']);
  t.after(() => server.stop());
  const a = await connected(server.client());
  const b = await connected(server.client());
  // node-postgres parses a named statement once, then only binds and executes it.
  const toA = { name: 'to_a', text: 'SET search_path TO sa' };
  await a.query(toA);
  await a.query({ name: 'to_b', text: 'SET search_path TO sb' });
  await a.query(toA);
  // Another client's turn in between: a's own settings are brought back for a's next turn.
  assert.deepEqual((await b.query('show search_path')).rows, [{ search_path: 'public' }]);
  assert.deepEqual((await a.query('show search_path')).rows, [{ search_path: 'sa' }]);
  for (const c of [a, b]) await c.end();
});

test("another client's reset makes a client's statements again under that client's own search_path (not under the resetting one's, where they may not parse)", { timeout: 60000 }, async (t) => {
  const server = await startServe(['--auth', 'none']);
  t.after(() => server.stop());
  const a = await connected(server.client());
  const b = await connected(server.client());
  await a.query('create schema sa; create schema sb; create table sa.t (n int); insert into sa.t values (1)');
  await a.query('set search_path = sa');
  const mine = { name: 'mine', text: 'select n from t' };
  assert.deepEqual((await a.query(mine)).rows, [{ n: 1 }]);
  // b resets PGlite's one session under its own search_path, where there is no table t: a's
  // statement, made again under b's, would not parse, and a would lose it.
  await b.query('set search_path = sb');
  await b.query('deallocate all');
  assert.deepEqual((await b.query('show search_path')).rows, [{ search_path: 'sb' }]);
  assert.deepEqual((await a.query(mine)).rows, [{ n: 1 }], "a's statement is still there");
  for (const c of [a, b]) await c.end();
});

test('a DEALLOCATE ALL refused in the queue (55P03) takes nothing from its client: its statements are still made again after a reset', { timeout: 60000 }, async (t) => {
  const server = await startServe(['--auth', 'none', '--queue-timeout', '300']);
  t.after(() => server.stop());
  const a = await connected(server.client());
  const b = await connected(server.client());
  const c = await connected(server.client());
  const good = { name: 'good', text: 'select 5 as n' };
  assert.deepEqual((await a.query(good)).rows, [{ n: 5 }]);
  await b.query('begin');
  await assert.rejects(a.query('deallocate all'), (err) => err.code === '55P03');
  await b.query('commit');
  await c.query('discard all'); // PGlite drops everyone's statements; serve makes a's again
  assert.deepEqual((await a.query(good)).rows, [{ n: 5 }]); // pg sends Bind/Execute only
  for (const client of [a, b, c]) await client.end();
});

// Each example runs as its own process and is driven by real clients: psql, node-postgres,
// postgres.js and pgbench.
import test from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { startExample, psql, run } from './helpers.mjs';

const selectOne = path.join(mkdtempSync(path.join(os.tmpdir(), 'pggn-')), 'select1.sql');
writeFileSync(selectOne, 'SELECT 1;\n');

function pgbench(port, args, { user = 'postgres', password = 'postgres' } = {}) {
  return run('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', user, ...args, 'postgres'], {
    env: { PGPASSWORD: password, PGSSLMODE: 'disable' },
    timeout: 120000,
  });
}

test('examples/pglite.mjs serves PGlite to psql, node-postgres, postgres.js and pgbench', { timeout: 300000 }, async (t) => {
  const server = await startExample('pglite.mjs');
  t.after(() => server.stop());

  await t.test('psql runs SQL and shows the PGlite server version', async () => {
    const result = await psql(server.port, ['-c', 'create table items (id int primary key, name text)', '-c',
      "insert into items values (1, 'one'), (2, 'two')", '-c', 'select name from items order by id'], { password: 'postgres' });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /one\n two/);
    const version = await psql(server.port, ['-Atc', 'show server_version'], { password: 'postgres' });
    assert.match(version.stdout, /^18\./);
  });

  await t.test('psql with a wrong password gets PostgreSQL\'s message', async () => {
    const result = await psql(server.port, ['-c', 'select 1'], { password: 'wrong' });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /password authentication failed for user "postgres"/);
  });

  await t.test('node-postgres: simple, parameterized, named prepared, transactions, errors', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: 'postgres' });
    await client.connect();
    try {
      assert.deepEqual((await client.query('select 1 as one')).rows, [{ one: 1 }]);
      assert.deepEqual((await client.query('select $1::int + $2::int as sum', [40, 2])).rows, [{ sum: 42 }]);
      const named = { name: 'by-id', text: 'select name from items where id = $1' };
      assert.deepEqual((await client.query({ ...named, values: [1] })).rows, [{ name: 'one' }]);
      assert.deepEqual((await client.query({ ...named, values: [2] })).rows, [{ name: 'two' }]);
      await client.query('begin');
      await client.query("insert into items values (3, 'three')");
      assert.equal((await client.query('select count(*)::int as n from items')).rows[0].n, 3);
      await client.query('rollback');
      assert.equal((await client.query('select count(*)::int as n from items')).rows[0].n, 2);
      await assert.rejects(client.query('selec 1'), (err) => err.code === '42601');
      await assert.rejects(client.query('select $1::int', ['x']), (err) => err.code === '22P02');
      assert.deepEqual((await client.query('select 2 as two')).rows, [{ two: 2 }], 'still usable after errors');
    } finally {
      await client.end();
    }
  });

  await t.test('postgres.js: extended and simple queries, a transaction', async () => {
    const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'postgres', password: 'postgres', max: 1, onnotice: () => {} });
    try {
      assert.deepEqual([...await sql`select ${5}::int * 2 as ten`], [{ ten: 10 }]);
      assert.deepEqual([...await sql`select 'simple' as kind`.simple()], [{ kind: 'simple' }]);
      await sql.begin(async (tx) => {
        await tx`insert into items values (4, 'four')`;
      });
      assert.deepEqual([...await sql`select name from items where id = 4`], [{ name: 'four' }]);
    } finally {
      await sql.end();
    }
  });

  await t.test('several clients at once take turns on the single PGlite session', async () => {
    const clients = Array.from({ length: 4 }, () => new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: 'postgres' }));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const results = await Promise.all(clients.map(async (c, i) => {
        await c.query('begin');
        await c.query('insert into items values ($1, $2)', [100 + i, `c${i}`]);
        const { rows } = await c.query('select count(*)::int as n from items where id >= 100');
        await c.query('commit');
        return rows[0].n;
      }));
      assert.deepEqual([...results].sort(), [1, 2, 3, 4], 'each transaction saw only the commits before it');
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  await t.test('pgbench initializes and runs, simple and extended protocol', async () => {
    const init = await pgbench(server.port, ['-i', '-I', 'dtGvp', '-s', '1', '-q']);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stderr, /done in/);
    for (const mode of ['simple', 'extended']) {
      const bench = await pgbench(server.port, ['-T', '2', '-c', '2', '-j', '2', '-M', mode]);
      assert.equal(bench.code, 0, bench.stderr);
      assert.match(bench.stdout, /number of failed transactions: 0 /);
      const tps = Number(/tps = ([\d.]+)/.exec(bench.stdout)[1]);
      assert.ok(tps > 0, `${mode}: ${bench.stdout}`);
    }
  });

  assert.equal(await server.stop(), 0, 'SIGTERM shuts the server down cleanly');
});

test('examples/fixed-result.mjs answers every client with a row from onQuery', { timeout: 120000 }, async (t) => {
  const server = await startExample('fixed-result.mjs');
  t.after(() => server.stop());

  const result = await psql(server.port, ['-Atc', 'select anything']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), 'you said: select anything');

  const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'x' });
  await client.connect();
  assert.deepEqual((await client.query('select $1::int', [7])).rows, [{ answer: 'you said: select $1::int' }]);
  assert.deepEqual((await client.query('simple')).rows, [{ answer: 'you said: simple' }]);
  await client.end();

  const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'x', fetch_types: false, max: 1 });
  assert.deepEqual([...await sql`select ${1}`], [{ answer: 'you said: select $1' }]);
  await sql.end();

  for (const mode of ['simple', 'extended', 'prepared']) {
    const bench = await pgbench(server.port, ['-n', '-f', selectOne, '-T', '1', '-c', '4', '-j', '2', '-M', mode], { user: 'x' });
    assert.equal(bench.code, 0, bench.stderr);
    assert.match(bench.stdout, /number of failed transactions: 0 /);
  }
});

test('examples/md5-auth.mjs lets in the users it knows, with md5', { timeout: 60000 }, async (t) => {
  const server = await startExample('md5-auth.mjs');
  t.after(() => server.stop());
  const ok = await psql(server.port, ['-c', 'select 1'], { user: 'alice', password: 'secret' });
  assert.match(ok.stderr, /Queries not yet implemented/, 'logged in; the built-ins answer the query');
  const wrong = await psql(server.port, ['-c', 'select 1'], { user: 'alice', password: 'hunter2' });
  assert.match(wrong.stderr, /FATAL: {2}password authentication failed for user "alice"/);
  const unknown = await psql(server.port, ['-c', 'select 1'], { user: 'mallory', password: 'x' });
  assert.match(unknown.stderr, /password authentication failed for user "mallory"/);
  assert.match(server.output, /authenticated: alice/);
});

test('examples/observe.mjs logs logins, failures and hook errors as JSON lines, and its counters at shutdown', { timeout: 60000 }, async (t) => {
  const server = await startExample('observe.mjs');
  t.after(() => server.stop());
  const ok = await psql(server.port, ['-c', 'select 1'], { user: 'alice', password: 'secret' });
  assert.match(ok.stderr, /Queries not yet implemented/);
  const boom = await psql(server.port, ['-c', "select 'boom'"], { user: 'alice', password: 'secret' });
  assert.match(boom.stderr, /ERROR: {2}boom/);
  const wrong = await psql(server.port, ['-c', 'select 1'], { user: 'alice', password: 'nope' });
  assert.match(wrong.stderr, /password authentication failed/);
  assert.equal(await server.stop(), 0);
  const lines = server.output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
  const has = (predicate, what) => assert.ok(lines.some(predicate), `${what} in:\n${server.output}`);
  has((l) => l.msg === 'connection authorized' && l.user === 'alice' && l.level === 'info', 'authorized');
  has((l) => l.msg === 'connection failed' && l.code === '28P01' && l.level === 'warn', 'failed login');
  has((l) => l.msg === 'onMessage failed: boom' && l.kind === 'hook' && /observe\.mjs/.test(l.stack), 'hook error');
  has((l) => l.msg === 'disconnection' && l.reason === 'end' && l.bytesSent > 0, 'disconnection');
  has((l) => l.msg === 'stats' && l.connectionsTotal === 3 && l.authFailures === 1 && l.hookCalls > 0, 'stats');
});

test('examples/js-table.mjs serves a JS array as a table, with the filter from a parameter', { timeout: 120000 }, async (t) => {
  const server = await startExample('js-table.mjs');
  t.after(() => server.stop());
  const table = await psql(server.port, ['-Atc', 'select * from people where age > 30']);
  assert.equal(table.code, 0, table.stderr);
  assert.equal(table.stdout, '1|Ada|36|2021-03-04 10:00:00+00\n2|Grace|45|2019-07-01 08:30:00+00\n');
  const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'x' });
  await client.connect();
  const { rows } = await client.query('select * from people where age > $1', [40]);
  assert.deepEqual(rows, [{ id: 2, name: 'Grace', age: 45, joined: new Date('2019-07-01T08:30:00Z') }]);
  await assert.rejects(client.query('select * from nowhere'), (err) => err.code === '42601');
  await client.end();
  const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'x', max: 1 });
  assert.deepEqual((await sql`select * from people where age > ${30}`).map((p) => p.name), ['Ada', 'Grace']);
  await sql.end();
  assert.equal(await server.stop(), 0, 'SIGTERM closes the server');
});

// onQuery: a data source served to real clients, on all three entry points. The gateway speaks
// the simple and extended query protocols itself; the clients here are psql, node-postgres and
// postgres.js (the Python, Java and pgbench clients are in query-clients.test.mjs).

import test from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import postgres from 'postgres';
import { MODES, startServer, psql, rawClient, message, parseMessages, errorFields } from './helpers.mjs';
import { queryOptions, TYPES, ITEMS } from './query-server.mjs';

const connect = async (port, extra = {}) => {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'u', database: 'd', ...extra });
  await client.connect();
  return client;
};

for (const mode of MODES) {
  test(`${mode}: psql reads results, \\x, errors with their position, several statements`, async (t) => {
    const server = await startServer(mode, queryOptions());
    t.after(() => server.close());
    const table = await psql(server.port, ['-c', 'select * from items limit 2']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /id \| +name +\| price \| +created/);
    assert.match(table.stdout, /1 \| item 1 \| +1\.25 \| 2024-01-01 00:00:00\+00/);
    assert.match(table.stdout, /\(2 rows\)/);

    const expanded = await psql(server.port, ['-c', '\\x', '-c', 'select types']);
    assert.equal(expanded.code, 0, expanded.stderr);
    for (const [type, , text] of TYPES) {
      const name = `${type.replace('[]', '_array')}_col`;
      assert.match(expanded.stdout, new RegExp(`^${name} +\\| ${text.replace(/[\\[\]{}().*+?^$|]/g, '\\$&')}$`, 'm'), `${type} in ${expanded.stdout}`);
    }

    const failed = await psql(server.port, ['-c', 'select fail']);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /ERROR: +relation "nowhere" does not exist\nLINE 1: select fail\n +\^\nHINT: +There is no table\./);

    const several = await psql(server.port, ['-c', 'select 1; select * from items where id = 7; insert into items values (1)']);
    assert.equal(several.code, 0, several.stderr);
    assert.match(several.stdout, /\?column\? \n-+\n +1\n\(1 row\)/);
    assert.match(several.stdout, /7 \| item 7/);
    assert.match(several.stdout, /INSERT 0 1/);

    // A session goes on after errors, inside and outside a transaction block.
    const script = await psql(server.port, ['-v', 'ON_ERROR_STOP=0', '-c', 'begin', '-c', 'select fail', '-c', 'select 1', '-c', 'rollback', '-c', 'select 1']);
    assert.match(script.stderr, /current transaction is aborted, commands ignored until end of transaction block/);
    assert.match(script.stdout, /ROLLBACK\n +\?column\?/);
  });

  test(`${mode}: node-postgres, simple and extended, named statements reused, types decoded`, async (t) => {
    const server = await startServer(mode, queryOptions());
    const client = await connect(server.port);
    t.after(() => client.end().then(() => server.close()));
    const all = await client.query('select * from items');
    assert.equal(all.rowCount, 100);
    assert.deepEqual(all.rows[0], ITEMS[0]);
    assert.deepEqual(all.fields.map((f) => f.dataTypeID), [23, 25, 701, 1184]);

    const one = await client.query('select * from items where id = $1', [42]);
    assert.deepEqual(one.rows, [ITEMS[41]]);
    for (const id of [3, 5, 8]) {
      const named = await client.query({ name: 'by-id', text: 'select * from items where id = $1', values: [id] });
      assert.deepEqual(named.rows, [ITEMS[id - 1]]);
    }
    const types = await client.query('select types');
    const row = types.rows[0];
    assert.equal(row.bool_col, true);
    assert.equal(row.int8_col, '9007199254740993');
    assert.equal(row.numeric_col, '12345.678900');
    assert.deepEqual(row.bytea_col, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    assert.equal(row.timestamptz_col.toISOString(), '2024-01-02T03:04:05.123Z');
    assert.deepEqual(row.json_col, { a: 1 });
    assert.deepEqual(row.jsonb_col, { b: [1, 2] });
    assert.deepEqual(row.int4_array_col, [1, null, 3]);
    assert.deepEqual(row.text_array_col, ['a', 'b c']);

    await assert.rejects(client.query('select fail'), (err) => err.code === '42P01' && err.position === '8');
    await assert.rejects(client.query('select mismatch'), (err) => err.code === 'XX000' && /a row has 2 values but the result has 4 fields/.test(err.message));
    await assert.rejects(client.query('select overflow'), (err) => err.code === '22003' && /out of range for type smallint/.test(err.message));
    // The connection is fine after each error, and a row-mismatch failure sent the rows before it.
    assert.equal((await client.query('select * from items where id = $1', [1])).rowCount, 1);

    // Transaction status follows the commands.
    await client.query('begin');
    await assert.rejects(client.query('select fail'));
    await assert.rejects(client.query('select 1'), (err) => err.code === '25P02');
    await client.query('rollback');
    assert.equal((await client.query('select 1')).rows[0]['?column?'], 1);
    // COMMIT of a failed block rolls it back, and says so (simple and extended), as PostgreSQL.
    for (const commit of ['commit', { name: 'commit-failed', text: 'commit' }]) {
      await client.query('begin');
      await assert.rejects(client.query('select fail'));
      assert.equal((await client.query(commit)).command, 'ROLLBACK');
      assert.equal((await client.query('commit')).command, 'COMMIT');
    }
  });

  test(`${mode}: postgres.js with its default prepared statements, cursors and streams`, async (t) => {
    const server = await startServer(mode, queryOptions());
    const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'u', database: 'd', max: 1 });
    t.after(() => sql.end().then(() => server.close()));
    for (const id of [1, 2, 1]) {
      const [item] = await sql`select * from items where id = ${id}`;
      assert.deepEqual({ ...item }, ITEMS[id - 1]);
    }
    const echoed = await sql`select echo(${5}::int4, ${'x'}::text, ${true}::bool)`;
    assert.deepEqual({ ...echoed[0] }, { p1: 5, p2: 'x', p3: true });
    let seen = 0;
    for await (const rows of sql`select gen(2500)`.cursor(1000)) seen += rows.length;
    assert.equal(seen, 2500);
    assert.equal((await sql`select gen(${3000})`).length, 3000);
    await assert.rejects(sql`select fail`, (err) => err.code === '42P01');
    const values = await sql`select * from items where id = 9`.values();
    assert.equal(values[0][1], 'item 9');
  });
}

test('parameters of every type arrive decoded, in text (pg) and binary (postgres.js types)', async (t) => {
  const server = await startServer('js', queryOptions());
  const client = await connect(server.port);
  t.after(() => client.end().then(() => server.close()));
  const echo = await client.query('select echo($1::int4, $2::int8, $3::float8, $4::bool, $5::timestamptz, $6::bytea, $7::text[], $8::numeric, $9::uuid)',
    [7, '9007199254740993', 2.5, false, new Date('2020-01-01T00:00:00Z'), Buffer.from('hi'), ['a', null], '1.50', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']);
  const row = echo.rows[0];
  assert.equal(row.p1, 7);
  assert.equal(row.p2, '9007199254740993');
  assert.equal(row.p3, 2.5);
  assert.equal(row.p4, false);
  assert.equal(row.p5.toISOString(), '2020-01-01T00:00:00.000Z');
  assert.deepEqual(row.p6, Buffer.from('hi'));
  assert.deepEqual(row.p7, ['a', null]);
  assert.equal(row.p8, '1.50');
  assert.equal(row.p9, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
});

test('onQuery sees decoded params, types and state; undefined is a command with its own tag', async (t) => {
  const calls = [];
  const server = await startServer('js', {
    authMode: 'none',
    onQuery(query, state) {
      calls.push({ sql: query.sql, params: query.params, paramTypes: query.paramTypes, status: state.transactionStatus });
      if (/^select/.test(query.sql)) return { fields: [{ name: 'n', type: 23 }], rows: [{ n: query.params.length }] };
      return undefined;
    },
    onDescribe: () => ({ paramTypes: ['int8', 'timestamptz'], fields: [{ name: 'n', type: 'int4' }] }),
  });
  const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'u', database: 'd', max: 1 });
  t.after(() => sql.end().then(() => server.close()));
  const [row] = await sql`select ${10n}, ${new Date(Date.UTC(2021, 5, 1))}`;
  assert.equal(row.n, 2);
  const begin = await sql.unsafe('begin');
  assert.equal(begin.command, 'BEGIN');
  await sql.unsafe('select 1');
  await sql.unsafe('end');
  const select = calls.find((c) => c.params.length === 2);
  assert.deepEqual(select.params, [10n, new Date(Date.UTC(2021, 5, 1))]);
  assert.deepEqual(select.paramTypes, [20, 1184]);
  assert.equal(calls.at(-2).status, 'transaction', 'state.transactionStatus inside BEGIN');
});

test('hostile extended-protocol input gets PostgreSQL errors and the session goes on', async (t) => {
  const server = await startServer('native', queryOptions());
  const raw = await rawClient(server.port);
  t.after(() => {
    raw.close();
    return server.close();
  });
  /** Sends `bytes` and returns the messages up to the next ReadyForQuery. */
  const exchange = async (bytes) => {
    const start = raw.received.length;
    raw.send(bytes);
    const untilReady = (buf) => parseMessages(buf.subarray(start)).some((m) => m.type === 'Z');
    await raw.waitFor(untilReady);
    return parseMessages(raw.received.subarray(start));
  };
  const startupBody = Buffer.from('\0\x03\0\0user\0u\0\0', 'latin1');
  const startupLength = Buffer.alloc(4);
  startupLength.writeInt32BE(startupBody.length + 4);
  await exchange(Buffer.concat([startupLength, startupBody]));
  const str = (s) => Buffer.from(`${s}\0`);
  const i16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
  const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
  const parse = (name, sql, types = []) => message('P', Buffer.concat([str(name), str(sql), i16(types.length), ...types.map(i32)]));
  const bind = (portal, stmt, formats, params) => message('B', Buffer.concat([
    str(portal), str(stmt), i16(formats.length), ...formats.map(i16), i16(params.length),
    ...params.map((p) => (p === null ? i32(-1) : Buffer.concat([i32(p.length), p]))), i16(0),
  ]));
  const execute = (portal) => message('E', Buffer.concat([str(portal), i32(0)]));
  const sync = message('S');
  const cases = [
    [[bind('', 'missing', [], [])], '26000', 'prepared statement "missing" does not exist'],
    [[parse('', 'select * from items where id = $1', [23]), bind('', '', [], [])], '08P01', 'bind message supplies 0 parameters, but unnamed prepared statement requires 1'],
    [[parse('', 'select * from items where id = $1', [23]), bind('', '', [1], [Buffer.from([0, 0, 1])])], '22P03', 'incorrect binary data format in bind parameter 1'],
    [[parse('', 'select * from items where id = $1', [23]), bind('', '', [0], [Buffer.from('seven')])], '22P02', 'invalid input syntax for type integer: "seven"'],
    [[execute('nowhere')], '34000', 'portal "nowhere" does not exist'],
    [[parse('', 'select mismatch'), bind('', '', [], []), execute('')], 'XX000', 'a row has 2 values but the result has 4 fields'],
  ];
  for (const [messages, code, text] of cases) {
    const replies = await exchange(Buffer.concat([...messages, execute(''), sync]));
    const error = replies.find((m) => m.type === 'E');
    assert.ok(error, `${code}: ${replies.map((m) => m.type).join('')}`);
    const fields = errorFields(error.body);
    assert.equal(fields.C, code);
    assert.equal(fields.M, text);
    assert.equal(replies.at(-1).body.toString(), 'I');
  }
  const ok = await exchange(message('Q', str('select * from items where id = 3')));
  assert.deepEqual(ok.map((m) => m.type).join(''), 'TDCZ');
});

test('the column-batch encoder writes exactly what the per-value encoder writes, errors included', async () => {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const binding = require('../lib/binding.js');
  const { encodeBatch } = require('../lib/query.js');
  const base = Date.UTC(2024, 1, 29, 12);
  const columns = [
    ['int4', (i) => [i, -i, null, 2 ** 31 - 1][i % 4]],
    ['int8', (i) => [BigInt(i) * 10n ** 15n, null, -9223372036854775808n][i % 3]],
    ['int8', (i) => [i * 1000, '77', null][i % 3]],
    ['float8', (i) => [i / 7, -0, Infinity, NaN, 1e21, null][i % 6]],
    ['float4', (i) => i / 3],
    ['text', (i) => [`row ${i}`, '', null, 'ünï ✓ "q"'][i % 4]],
    ['numeric', (i) => [`${i}.50`, i, null][i % 3]],
    ['bool', (i) => [true, false, null][i % 3]],
    ['timestamptz', (i) => [new Date(base + i * 1234567), null, '2024-01-01 10:00:00+02'][i % 3]],
    ['timestamp', (i) => new Date(base - i * 86400000 * 400)],
    ['date', (i) => [new Date(base + i * 86400000), '2020-02-02'][i % 2]],
    ['json', (i) => [{ a: i }, 'null', 5][i % 3]],
    ['uuid', () => 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
    ['int4[]', (i) => [i, null]],
    ['bytea', (i) => Buffer.from([i % 256])],
  ];
  const rowsFor = (n, make) => Array.from({ length: n }, (_, i) => [make(i)]);
  const same = (a, b, what) => {
    if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) assert.ok(Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b), what);
    else assert.deepEqual({ ...a }, { ...b }, what);
  };
  for (const [type, make] of columns) {
    for (const format of [0, 1]) {
      const fields = [{ name: 'c', type }];
      const plan = binding.queryPlan(fields, [format]);
      const cursor = { plan, names: ['c'] };
      const rows = rowsFor(50, make);
      same(encodeBatch(cursor, rows, 0, rows.length), binding.encodeRows(plan, rows, 0, rows.length, null, null), `${type} format ${format}`);
      // Object rows take the same path.
      const objects = rows.map(([c]) => ({ c }));
      same(encodeBatch(cursor, objects, 0, objects.length), binding.encodeRows(plan, rows, 0, rows.length, null, null), `${type} objects`);
    }
  }
  // Failures: the same SQLSTATE and message either way.
  const failing = [
    ['int2', [[1], [40000]]],
    ['int4', [[1], [1.5]]],
    ['text', [['a'], ['b\0c']]],
    ['int8', [[1n], [2n ** 64n]]],
    ['timestamptz', [[new Date(NaN)]]],
    ['bool', [[true], [1]]],
  ];
  for (const [type, rows] of failing) {
    const plan = binding.queryPlan([{ name: 'c', type }], [0]);
    const batch = encodeBatch({ plan, names: ['c'] }, rows, 0, rows.length);
    const single = binding.encodeRows(plan, rows, 0, rows.length, null, null);
    assert.equal(typeof batch.code, 'string', `${type} fails`);
    assert.equal(batch.code, single.code, type);
    assert.equal(batch.message, single.message, type);
  }
});

test('nothing returned completes each statement with its own tag; query.statements splits the SQL', async (t) => {
  const seen = [];
  const server = await startServer('js', {
    authMode: 'none',
    onQuery(query) {
      seen.push(query.statements);
      if (query.sql.startsWith('create')) return [undefined, undefined];
      return undefined;
    },
  });
  const client = await connect(server.port);
  t.after(() => client.end().then(() => server.close()));
  const results = await client.query("set a = 1; set b = 'x;y'");
  assert.deepEqual(results.map((r) => r.command), ['SET', 'SET']);
  const created = await client.query('create table a (x int); begin');
  assert.deepEqual(created.map((r) => r.command), ['CREATE', 'BEGIN']);
  assert.deepEqual(seen[0], ['set a = 1', "set b = 'x;y'"]);
  await client.query('rollback');
});

test('rows that do not match what a statement Describe told the client are refused, not misread', async (t) => {
  const server = await startServer('native', {
    authMode: 'none',
    onQuery: ({ sql }) => ({ fields: [{ name: 'a', type: sql.includes('text') ? 'text' : 'int4' }], rows: [[1]] }),
    onDescribe: ({ sql }) => (sql.includes('described') ? { fields: [{ name: 'a', type: 'int4' }] } : undefined),
  });
  const sql = postgres({ host: '127.0.0.1', port: server.port, user: 'u', database: 'd', max: 1 });
  const client = await connect(server.port);
  t.after(async () => {
    await client.end();
    await sql.end();
    await server.close();
  });
  // postgres.js describes every statement; onDescribe answered nothing: no rows were announced.
  await assert.rejects(sql`select ${1}`, (err) => err.code === '0A000' && /Define onDescribe/.test(err.hint));
  await assert.rejects(sql`select described text ${1}`, (err) => err.code === '0A000' && /23; onQuery returned 25/.test(err.detail));
  assert.deepEqual([...await sql`select described ${1}`], [{ a: 1 }]);
  // node-postgres describes the portal, which sends the real columns: no check needed.
  assert.deepEqual((await client.query('select text $1', [1])).rows, [{ a: '1' }]);
});

for (const mode of ['js', 'native']) {
  test(`${mode}: a row that throws when read is the statement's error, never the process's`, async (t) => {
    const server = await startServer(mode, {
      authMode: 'none',
      async onQuery({ sql }) {
        if (sql === 'select 1') return { fields: [{ name: 'n', type: 'int4' }], rows: [[1]] };
        return { fields: [{ name: 'a', type: 'text' }], rows: [{ get a() { throw new Error('getter says no'); } }] };
      },
    });
    const client = await connect(server.port);
    t.after(() => client.end().then(() => server.close()));
    await assert.rejects(client.query('select bad'), (err) => err.code === 'XX000' && /getter says no/.test(err.message));
    assert.deepEqual((await client.query('select 1')).rows, [{ n: 1 }]);
  });
}

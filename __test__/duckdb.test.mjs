// examples/duckdb.mjs runs as its own process, serving an in-memory DuckDB database, and real
// clients use it: psql, node-postgres (simple and extended protocol), postgres.js (cancel),
// psycopg and pgjdbc. Values of every common type must come back as the client's own types.
import test from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import postgres from 'postgres';
import { startExample, psql, run } from './helpers.mjs';

const client = (name) => new URL(`./clients/${name}`, import.meta.url).pathname;

const CREATE = `create table items (id int primary key, name text, price double, day date, stamp timestamp,
  stamptz timestamptz, amount decimal(12, 4), ok bool, tags int[], big bigint)`;
const INSERT = `insert into items values
  (1, 'one', 1.5, '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+00', 1234.5678, true, [1, 2, null], 9007199254740993),
  (2, 'two', 2.25, '1999-12-31', '2000-01-01 00:00:00', '2000-01-01 12:00:00+02', -0.0001, false, [], -1),
  (3, 'three', null, null, null, null, null, null, null, null)`;

test('examples/duckdb.mjs serves DuckDB to psql, node-postgres, postgres.js, psycopg and pgjdbc', { timeout: 300000 }, async (t) => {
  const server = await startExample('duckdb.mjs');
  t.after(() => server.stop());
  const connection = { host: '127.0.0.1', port: server.port, user: 'u', database: 'd' };

  await t.test('psql creates and fills a table, reads it back and lists it with \\dt', { timeout: 60000 }, async () => {
    const setup = await psql(server.port, ['-c', CREATE, '-c', INSERT]);
    assert.equal(setup.code, 0, setup.stderr);
    assert.equal(setup.stdout, 'CREATE\nINSERT 0 3\n');
    const rows = await psql(server.port, ['-AtF', '|', '-c', 'select * from items order by id']);
    assert.equal(rows.code, 0, rows.stderr);
    assert.equal(rows.stdout, [
      '1|one|1.5|2024-02-29|2024-01-02 03:04:05.123456|2024-01-02 03:04:05.5+00|1234.5678|t|{1,2,NULL}|9007199254740993',
      '2|two|2.25|1999-12-31|2000-01-01 00:00:00|2000-01-01 10:00:00+00|-0.0001|f|{}|-1',
      '3|three||||||||',
      '',
    ].join('\n'));
    const several = await psql(server.port, ['-At', '-c', "select count(*) from items; select name from items where name = 'a;b' or id = 2"]);
    assert.equal(several.code, 0, several.stderr);
    assert.equal(several.stdout, '3\ntwo\n');
    const list = await psql(server.port, ['-At', '-c', '\\dt']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout, 'main|items|table|duckdb\n');
  });

  await t.test('psql: a missing table is 42P01, with the position of its name', { timeout: 60000 }, async () => {
    const result = await psql(server.port, ['-v', 'VERBOSITY=verbose', '-c', 'select *\nfrom missing_table']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /ERROR: {2}42P01: Catalog Error: Table with name missing_table does not exist!\nLINE 2: from missing_table\n {13}\^/);
  });

  await t.test('node-postgres: simple and extended protocol, typed values, parameters, a transaction, errors', { timeout: 60000 }, async () => {
    // Dates and timestamps without zone as their text: node-postgres would read them in the local zone.
    const types = { getTypeParser: (oid, format) => (oid === 1082 || oid === 1114 ? String : pg.types.getTypeParser(oid, format)) };
    const db = new pg.Client({ ...connection, types });
    await db.connect();
    try {
      const simple = await db.query('select * from items where id = 1');
      assert.deepEqual(simple.rows, [{
        id: 1,
        name: 'one',
        price: 1.5,
        day: '2024-02-29',
        stamp: '2024-01-02 03:04:05.123456',
        stamptz: new Date('2024-01-02T03:04:05.500Z'),
        amount: '1234.5678',
        ok: true,
        tags: [1, 2, null],
        big: '9007199254740993',
      }]);
      assert.deepEqual(simple.fields.map((f) => f.dataTypeID), [23, 25, 701, 1082, 1114, 1184, 1700, 16, 1007, 20]);

      const extended = await db.query('select id, name, price from items where id = $1 or name = $2 order by id', [3, 'two']);
      assert.deepEqual(extended.rows, [{ id: 2, name: 'two', price: 2.25 }, { id: 3, name: 'three', price: null }]);
      assert.deepEqual((await db.query('select $1::int + $2::int as sum', [40, 2])).rows, [{ sum: 42 }]);
      assert.deepEqual((await db.query('select count(*)::int as n from items where day < $1', ['2000-01-01'])).rows, [{ n: 1 }]);
      const named = { name: 'by-id', text: 'select name from items where id = $1' };
      assert.deepEqual((await db.query({ ...named, values: [1] })).rows, [{ name: 'one' }]);
      assert.deepEqual((await db.query({ ...named, values: [2] })).rows, [{ name: 'two' }]);

      await db.query('create table pg_items (id int, stamp timestamptz, note text)');
      const at = new Date('2020-05-06T07:08:09.123Z');
      const insert = await db.query('insert into pg_items values ($1, $2, $3), ($4, $5, $6)', [1, at, 'a', 2, null, null]);
      assert.equal(insert.command, 'INSERT');
      assert.equal(insert.rowCount, 2);
      assert.deepEqual((await db.query('select * from pg_items order by id')).rows, [{ id: 1, stamp: at, note: 'a' }, { id: 2, stamp: null, note: null }]);
      const update = await db.query("update pg_items set note = 'b' where id = $1", [2]);
      assert.equal(update.rowCount, 1);

      await db.query('begin');
      await db.query('insert into pg_items (id) values (3)');
      assert.equal((await db.query('select count(*)::int as n from pg_items')).rows[0].n, 3);
      await db.query('rollback');
      assert.equal((await db.query('select count(*)::int as n from pg_items')).rows[0].n, 2);
      // A failed transaction is rolled back by COMMIT, as in PostgreSQL (DuckDB would commit
      // the insert: the error came before the statement ran).
      await db.query('begin');
      await db.query('insert into pg_items (id) values (3)');
      await assert.rejects(db.query('select nope from pg_items'), (err) => err.code === '42703');
      assert.equal((await db.query('commit')).command, 'ROLLBACK');
      assert.equal((await db.query('select count(*)::int as n from pg_items')).rows[0].n, 2);

      await assert.rejects(db.query('select * from missing_table where id = $1', [1]), (err) => {
        assert.equal(err.code, '42P01');
        assert.equal(err.position, '15');
        return true;
      });
      await assert.rejects(db.query('selec 1'), (err) => err.code === '42601');
      await assert.rejects(db.query('select nope from items'), (err) => err.code === '42703');
      assert.deepEqual((await db.query('select 2 as two')).rows, [{ two: 2 }], 'still usable after errors');

      const big = await db.query('select i, i * 2 as twice from range(100000) t(i)');
      assert.equal(big.rows.length, 100000);
      assert.deepEqual(big.rows[99999], { i: '99999', twice: '199998' });
    } finally {
      await db.end();
    }
  });

  await t.test('postgres.js: a cancelled query is interrupted in DuckDB', { timeout: 60000 }, async () => {
    const sql = postgres({ ...connection, max: 1, onnotice: () => {} });
    try {
      const query = sql`select count(*) from range(1000000000000) t(i) where i % 7 = 3`;
      setTimeout(() => query.cancel(), 300);
      await assert.rejects(query, (err) => err.code === '57014');
      assert.deepEqual([...(await sql`select name from items where id = ${1}`)], [{ name: 'one' }]);
    } finally {
      await sql.end();
    }
  });

  await t.test('psycopg: text and binary cursors, parameters, a transaction, errors', { timeout: 60000 }, async () => {
    const script = `
import sys, datetime, decimal, psycopg
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=u dbname=d connect_timeout=10 sslmode=disable") as conn:
    for binary in (False, True):
        cur = conn.cursor(binary=binary)
        cur.execute("select id, name, price, day, stamp, stamptz, amount, ok, tags, big from items where id = %s", (1,))
        print(binary, cur.fetchone())
        cur.execute("select %s::int + %s::int, %s::text, %s::double", (40, 2, "ünïcode", 0.25))
        print(binary, cur.fetchone())
    conn.execute("create table py_items (id int, day date, stamp timestamptz, amount decimal(10, 2))")
    conn.execute("insert into py_items values (%s, %s, %s, %s)",
                 (1, datetime.date(2021, 2, 3), datetime.datetime(2021, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc), decimal.Decimal("9.99")))
    print(conn.execute("select * from py_items").fetchone())
    conn.commit()  # psycopg opened a transaction with the first statement
    try:
        conn.execute("select * from missing_table")
    except psycopg.errors.UndefinedTable as e:
        print("error", e.sqlstate)
    conn.rollback()
    with conn.transaction():
        conn.execute("insert into py_items (id) values (2)")
        print("status", conn.info.transaction_status.name)
    print("count", conn.execute("select count(*) from py_items").fetchone()[0])
`;
    const { code, stdout, stderr } = await run('python3', ['-c', script, String(server.port)], { timeout: 60000 });
    assert.equal(code, 0, stderr);
    const row = "(1, 'one', 1.5, datetime.date(2024, 2, 29), datetime.datetime(2024, 1, 2, 3, 4, 5, 123456), "
      + "datetime.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=datetime.timezone.utc), Decimal('1234.5678'), True, [1, 2, None], 9007199254740993)";
    assert.equal(stdout, [
      `False ${row}`,
      "False (42, 'ünïcode', 0.25)",
      `True ${row}`,
      "True (42, 'ünïcode', 0.25)",
      "(1, datetime.date(2021, 2, 3), datetime.datetime(2021, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc), Decimal('9.99'))",
      'error 42P01',
      'status INTRANS',
      'count 2',
      '',
    ].join('\n'));
  });

  await t.test('pgjdbc: described statements, binary results, a cursor while other statements run, errors', { timeout: 150000 }, async () => {
    const { code, stdout, stderr } = await run('java', ['-cp', '/usr/share/java/postgresql.jar', client('JdbcDuckDB.java'), String(server.port)], { timeout: 150000 });
    assert.equal(code, 0, stderr);
    assert.equal(stdout, [
      'insert 1',
      'insert 1',
      'insert 1',
      'row 1 jdbc 1 0.5 2024-03-01 2024-03-01 10:00:00.25 1234.5678 true [1, 10]',
      'row 2 jdbc 2 1.0 2024-03-02 2024-03-01 10:00:00.25 2469.1356 false [2, 20]',
      'untyped int4 7 seven',
      'meanwhile 3',
      'cursor 5000 12497500',
      'error 42P01',
      'after 3',
      '',
    ].join('\n'));
  });
});

// onQuery with the clients of other languages: psycopg (text and binary cursors), asyncpg
// (binary everything, prepare(), cursors in a transaction), pgjdbc (prepareThreshold=1 and a
// fetchSize cursor) and pgbench in its three query modes, against a table served from JS.

import test from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, run } from './helpers.mjs';
import { queryOptions } from './query-server.mjs';

const client = (name) => new URL(`./clients/${name}`, import.meta.url).pathname;

for (const mode of ['js', 'native']) {
  test(`${mode}: psycopg, text and binary cursors`, async (t) => {
    const server = await startServer(mode, queryOptions());
    t.after(() => server.close());
    const { code, stdout, stderr } = await run('python3', [client('query_psycopg.py'), String(server.port)], { timeout: 60000 });
    assert.equal(code, 0, stderr);
    for (const binary of ['False', 'True']) {
      assert.match(stdout, new RegExp(`^item ${binary} 7 item 7 8.75 2024-01-07T00:00:00\\+00:00$`, 'm'));
      assert.match(stdout, new RegExp(`^types ${binary} True 9007199254740993 12345.678900 deadbeef a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 2024-02-29 04:05:06.789000 2024-01-02T03:04:05.123456 2024-01-02T03:04:05.123000\\+00:00 428 days, 4:05:06 \\{"b": \\[1, 2\\]\\} \\[1, None, 3\\] \\['a', 'b c'\\]$`, 'm'));
      assert.match(stdout, new RegExp(`^echo ${binary} \\(1099511627776, 'ünïcode', 0.25, datetime.datetime\\(2020, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc\\), Decimal\\('-1.50'\\)\\)$`, 'm'));
      assert.match(stdout, new RegExp(`^gen ${binary} 5000$`, 'm'));
    }
    assert.match(stdout, /^error 42P01\nstatus INTRANS\nstatus IDLE$/m);
  });

  test(`${mode}: asyncpg, binary for every type, prepare() and cursors in a transaction`, async (t) => {
    const server = await startServer(mode, queryOptions());
    t.after(() => server.close());
    const { code, stdout, stderr } = await run('python3', [client('query_asyncpg.py'), String(server.port)], { timeout: 60000 });
    assert.equal(code, 0, stderr);
    assert.equal(stdout, [
      'item 7 item 7 8.75 2024-01-07T00:00:00+00:00',
      'types True 12 9007199254740993 1.5 12345.678900 deadbeef a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 2024-02-29 04:05:06.789000 2024-01-02T03:04:05.123456 2024-01-02T03:04:05.123000+00:00 428 days, 4:05:06 {"a":1} {"b":[1,2]} [\'a\', \'b c\']',
      "echo [5, 1099511627776, 0.5, True, datetime.datetime(2020, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.timezone.utc), b'\\x00\\x01', ['a', None], Decimal('3.25'), UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), datetime.date(2024, 2, 29), datetime.timedelta(days=3, seconds=5), '{\"k\": 1}']",
      "prepared ['item 1', 'item 2', 'item 3']",
      'cursor 300 300 0 300',
      'iterated 2500',
      'error 42P01 8',
      'after 1',
      '',
    ].join('\n'));
  });

  test(`${mode}: pgjdbc with prepareThreshold=1 (binary) and a fetchSize cursor`, { timeout: 180000 }, async (t) => {
    const server = await startServer(mode, queryOptions());
    t.after(() => server.close());
    const { code, stdout, stderr } = await run('java', ['-cp', '/usr/share/java/postgresql.jar', client('JdbcQuery.java'), String(server.port)], { timeout: 150000 });
    assert.equal(code, 0, stderr);
    assert.equal(stdout, [
      'item 4 item 4 5.0 2024-01-04T00:00:00Z',
      'item 5 item 5 6.25 2024-01-05T00:00:00Z',
      'item 6 item 6 7.5 2024-01-06T00:00:00Z',
      'types true 9007199254740993 12345.678900 a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 2024-02-29 2024-01-02T03:04:05.123Z héllo "world" [1, null, 3]',
      'types true 9007199254740993 12345.678900 a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 2024-02-29 2024-01-02T03:04:05.123Z héllo "world" [1, null, 3]',
      'cursor 2500 3123750',
      'error 42P01',
      'after 1',
      '',
    ].join('\n'));
  });
}

for (const mode of ['js', 'adopted', 'native']) {
  test(`${mode}: pgbench -M simple, extended and prepared against a table served from JS`, async (t) => {
    const log = [];
    const server = await startServer(mode, queryOptions({ log }));
    const dir = mkdtempSync(path.join(tmpdir(), 'pgbench-'));
    t.after(() => {
      rmSync(dir, { recursive: true, force: true });
      return server.close();
    });
    const script = path.join(dir, 'items.sql');
    writeFileSync(script, '\\set id random(1, 100)\nselect * from items where id = :id;\n');
    for (const protocol of ['simple', 'extended', 'prepared']) {
      const before = log.length;
      const result = await run('pgbench', ['-n', '-h', '127.0.0.1', '-p', String(server.port), '-U', 'u', '-M', protocol, '-c', '4', '-t', '250', '-f', script, 'd'], {
        env: { PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' },
        timeout: 60000,
      });
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.match(result.stdout, /number of transactions actually processed: 1000\/1000/);
      assert.match(result.stdout, /number of failed transactions: 0 /);
      // Each transaction ran its statement exactly once.
      assert.equal(log.length - before, 1000, `${protocol}: ${log.length - before} statements run`);
    }
  });
}

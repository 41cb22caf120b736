// onQuery's request/response fast path on every entry point: what it must keep from the
// general path. The session's own answers (ParseComplete, BindComplete) wait to leave with a
// statement's result, a small result is encoded straight into the session's output, and a
// finished portal keeps a shared cursor; each case here broke one of those once.

import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { MODES, startServer, rawClient, message, frontend, parseMessages, errorFields, sleep } from './helpers.mjs';

const FIELDS = [{ name: 'a', type: 'int4' }];
const types = (buf) => parseMessages(buf).map((m) => m.type).join('');
const readyCount = (buf) => parseMessages(buf).filter((m) => m.type === 'Z').length;

async function connected(port) {
  const client = await rawClient(port);
  client.send(frontend.startup({ user: 'u', database: 'd' }));
  await client.waitFor((buf) => readyCount(buf) === 1);
  return { client, skip: client.received.length };
}

/** The messages after the startup answer. */
const after = (client, skip) => client.received.subarray(skip);

/** Parse, Bind, Execute (no Describe) and Sync of `sql`. */
const statement = (sql) => Buffer.concat([frontend.parse(sql), frontend.bind(), frontend.execute(), frontend.sync()]);

for (const mode of MODES) {
  test(`${mode}: a finished result does not wait for a later statement's slow onQuery`, async (t) => {
    let release;
    const slow = new Promise((resolve) => { release = resolve; });
    const server = await startServer(mode, {
      authMode: 'none',
      onQuery: (query) => (query.sql === 'slow' ? slow.then(() => ({ fields: FIELDS, rows: [[2]] })) : { fields: FIELDS, rows: [[1]] }),
    });
    t.after(() => server.close());
    const { client, skip } = await connected(server.port);
    t.after(() => client.close());
    // Both statements in one write: the first one's answer, ReadyForQuery included, must
    // arrive while the second one's hook is still waiting.
    client.send(Buffer.concat([statement('fast'), statement('slow')]));
    await client.waitFor(() => readyCount(after(client, skip)) >= 1, 5000);
    assert.equal(types(after(client, skip)).slice(0, 5), '12DCZ');
    release();
    await client.waitFor(() => readyCount(after(client, skip)) >= 2, 5000);
    assert.equal(types(after(client, skip)), '12DCZ12DCZ');
  });

  test(`${mode}: what onQuery returns is read once, and a getter that throws is the statement's error`, async (t) => {
    const server = await startServer(mode, {
      authMode: 'none',
      onQuery(query) {
        if (query.sql === 'proxy') return new Proxy({}, { get(_, key) { throw new Error(`no ${String(key)}`); } });
        if (query.sql === 'getter') return { get fields() { throw new Error('fields getter'); }, rows: [] };
        return { fields: FIELDS, rows: [[1]] };
      },
    });
    t.after(() => server.close());
    const { client, skip } = await connected(server.port);
    t.after(() => client.close());
    for (const [sql, text] of [['proxy', 'no then'], ['getter', 'fields getter']]) {
      const start = client.received.length;
      client.send(frontend.query(sql));
      await client.waitFor(() => readyCount(client.received.subarray(start)) >= 1, 5000);
      const messages = parseMessages(client.received.subarray(start));
      assert.equal(messages.map((m) => m.type).join(''), 'EZ', sql);
      assert.equal(errorFields(messages[0].body).M, text);
    }
    // The connection goes on.
    const start = client.received.length;
    client.send(frontend.query('select'));
    await client.waitFor(() => readyCount(client.received.subarray(start)) >= 1, 5000);
    assert.equal(types(client.received.subarray(start)), 'TDCZ');
    assert.ok(skip > 0);
  });

  test(`${mode}: a row getter that writes to the connection while its row is encoded`, async (t) => {
    const notice = message('N', Buffer.from('SNOTICE\0VNOTICE\0C00000\0Mfrom a getter\0\0'));
    let connection;
    const server = await startServer(mode, (conn) => ({
      authMode: 'none',
      onQuery(query, state, conn2) {
        const target = conn2 ?? connection;
        const row = query.sql === 'fail'
          ? { get a() { target.sendData(notice); return 'not a number'; } }
          : { get a() { target.sendData(notice); return 7; } };
        return { fields: FIELDS, rows: [row, row] };
      },
    }), { onConnection: (conn) => { connection = conn; } });
    t.after(() => server.close());
    const { client, skip } = await connected(server.port);
    t.after(() => client.close());
    client.send(Buffer.concat([frontend.parse('ok'), frontend.bind(), frontend.describePortal(), frontend.execute(), frontend.sync()]));
    await client.waitFor(() => readyCount(after(client, skip)) >= 1, 5000);
    const messages = parseMessages(after(client, skip));
    // Every message whole; the rows are the two sevens, the notices come as sent.
    assert.deepEqual(messages.filter((m) => m.type !== 'N').map((m) => m.type).join(''), '12TDDCZ');
    assert.deepEqual(messages.filter((m) => m.type === 'D').map((m) => m.body.toString('latin1', 6)), ['7', '7']);
    assert.equal(messages.filter((m) => m.type === 'N').length, 2);

    // A value that does not fit: RowDescription, then the error, as PostgreSQL sends them.
    const start = client.received.length;
    client.send(Buffer.concat([frontend.parse('fail'), frontend.bind(), frontend.describePortal(), frontend.execute(), frontend.sync()]));
    await client.waitFor(() => readyCount(client.received.subarray(start)) >= 1, 5000);
    const failed = parseMessages(client.received.subarray(start)).filter((m) => m.type !== 'N');
    assert.equal(failed.map((m) => m.type).join(''), '12TEZ');
    assert.equal(errorFields(failed[3].body).C, '22P02');
  });
}

test('js: detach() inside onQuery hands over the socket after ParseComplete and BindComplete', async (t) => {
  const server = await startServer('js', {
    authMode: 'none',
    onQuery(query, state, connection) {
      const socket = connection.detach();
      socket.write(message('N', Buffer.from('SNOTICE\0Mmine now\0\0')));
      socket.end();
      return { fields: FIELDS, rows: [[1]] };
    },
  });
  t.after(() => server.close());
  const { client, skip } = await connected(server.port);
  t.after(() => client.close());
  client.send(Buffer.concat([frontend.parse('x'), frontend.bind(), frontend.execute(), frontend.sync()]));
  await client.waitClosed(5000);
  assert.equal(types(after(client, skip)), '12N');
});

test('js: detach() from a row\'s getter hands over the socket, and the answer stays behind', async (t) => {
  const server = await startServer('js', {
    authMode: 'none',
    onQuery(query, state, connection) {
      const row = {
        get a() {
          const socket = connection.detach();
          socket.write(message('N', Buffer.from('SNOTICE\0Mmine now\0\0')));
          // The new owner keeps the socket open a while: nothing of ours may reach it.
          setTimeout(() => socket.end(), 100);
          return 1;
        },
      };
      return { fields: FIELDS, rows: [row] };
    },
  });
  t.after(() => server.close());
  const { client, skip } = await connected(server.port);
  t.after(() => client.close());
  client.send(frontend.query('x'));
  await client.waitClosed(5000);
  assert.equal(types(after(client, skip)), 'N');
});

for (const mode of MODES) {
  test(`${mode}: rows that are Proxies of arrays (Vue, MobX reactive arrays) are read as arrays`, async (t) => {
    const reactive = (row) => new Proxy(row, {});
    const server = await startServer(mode, {
      authMode: 'none',
      onQuery(query) {
        if (query.sql === 'small') return { fields: FIELDS, rows: [reactive([1]), { a: 2 }, reactive([3])] };
        // Enough rows for batches, with a json column: the batch goes the per-value way.
        const rows = Array.from({ length: 40 }, (_, i) => reactive([i, { n: i }]));
        return { fields: [...FIELDS, { name: 'j', type: 'json' }], rows };
      },
    });
    t.after(() => server.close());
    const { client } = await connected(server.port);
    t.after(() => client.close());
    for (const [sql, expected] of [['small', ['1', '2', '3']], ['batch', Array.from({ length: 40 }, (_, i) => String(i))]]) {
      const start = client.received.length;
      client.send(frontend.query(sql));
      await client.waitFor(() => readyCount(client.received.subarray(start)) >= 1, 5000);
      const rows = parseMessages(client.received.subarray(start)).filter((m) => m.type === 'D');
      // The first cell of each DataRow: its length, then its text.
      const first = rows.map((m) => m.body.toString('latin1', 6, 6 + m.body.readInt32BE(2)));
      assert.deepEqual(first, expected, sql);
    }
  });
}

for (const mode of MODES) {
  test(`${mode}: a CancelRequest answers a running onDescribe with 57014 and aborts its signal`, async (t) => {
    let called;
    const calledOnce = new Promise((resolve) => { called = resolve; });
    let aborted = false;
    const server = await startServer(mode, {
      authMode: 'none',
      onQuery: () => ({ fields: FIELDS, rows: [[1]] }),
      onDescribe({ sql, signal }) {
        if (sql !== 'slow') return { fields: FIELDS };
        called();
        signal.addEventListener('abort', () => { aborted = true; });
        return new Promise(() => {}); // never settles, and ignores the signal
      },
    });
    t.after(() => server.close());
    const { client, skip } = await connected(server.port);
    t.after(() => client.close());
    const keyData = parseMessages(client.received).find((m) => m.type === 'K').body;
    client.send(Buffer.concat([message('P', Buffer.from('\0slow\0\0\0')), message('D', Buffer.from('S\0')), frontend.sync()]));
    await Promise.race([calledOnce, sleep(5000).then(() => { throw new Error('onDescribe was not called'); })]);
    const cancel = await rawClient(server.port);
    const request = Buffer.alloc(16);
    request.writeInt32BE(16, 0);
    request.writeInt32BE(80877102, 4);
    keyData.copy(request, 8);
    cancel.send(request);
    await client.waitFor(() => readyCount(after(client, skip)) >= 1, 5000);
    cancel.close();
    const messages = parseMessages(after(client, skip));
    assert.equal(messages.map((m) => m.type).join(''), '1EZ');
    assert.equal(errorFields(messages[1].body).C, '57014');
    assert.ok(aborted, 'the signal was aborted');
    // The connection goes on, and a fast onDescribe answers.
    const start = client.received.length;
    client.send(Buffer.concat([message('P', Buffer.from('\0fast\0\0\0')), message('D', Buffer.from('S\0')), frontend.sync()]));
    await client.waitFor(() => readyCount(client.received.subarray(start)) >= 1, 5000);
    assert.equal(types(client.received.subarray(start)), '1tTZ');
  });
}

/** Each column of a RowDescription body: its name and type OID. */
function describedColumns(body) {
  const columns = [];
  let at = 2;
  for (let i = 0; i < body.readInt16BE(0); i++) {
    const end = body.indexOf(0, at);
    columns.push(`${body.toString('utf8', at, end)}:${body.readInt32BE(end + 7)}`);
    at = end + 19;
  }
  return columns.join(' ');
}

for (const mode of MODES) {
  test(`${mode}: fields made anew for each statement share one plan per shape, and no two shapes share one`, async (t) => {
    const binding = createRequire(import.meta.url)('../lib/binding.js');
    const makePlan = binding.queryPlan;
    let plansMade = 0;
    binding.queryPlan = (...args) => {
      plansMade += 1;
      return makePlan(...args);
    };
    t.after(() => { binding.queryPlan = makePlan; });
    // Shapes that a careless key would mix up: a type name and its OID, names holding the
    // separators of a key, one column against two.
    const shapes = {
      int: () => [{ name: 'x', type: 'int4' }],
      text: () => [{ name: 'x', type: 'text' }],
      oid: () => [{ name: 'x', type: 25 }],
      tricky: () => [{ name: 'x|4:int4,1:y', type: 'text' }],
      two: () => [{ name: 'x', type: 'text' }, { name: 'y', type: 'int4' }],
      // Names can come from a client (a pass-through server): such shapes are not kept.
      long: () => [{ name: 'n'.repeat(5000), type: 'int4' }],
    };
    const expected = { int: 'x:23', text: 'x:25', oid: 'x:25', tricky: 'x|4:int4,1:y:25', two: 'x:25 y:23', long: `${'n'.repeat(5000)}:23` };
    const server = await startServer(mode, {
      authMode: 'none',
      // A new fields array per statement, as most servers write it.
      onQuery: ({ sql }) => {
        const fields = shapes[sql]();
        return { fields, rows: [fields.map((f) => (f.type === 'int4' ? 7 : 's'))] };
      },
    });
    t.after(() => server.close());
    const { client } = await connected(server.port);
    t.after(() => client.close());
    const before = plansMade;
    for (let round = 0; round < 20; round++) {
      for (const sql of Object.keys(shapes)) {
        const start = client.received.length;
        client.send(frontend.query(sql));
        await client.waitFor(() => readyCount(client.received.subarray(start)) >= 1, 5000);
        const description = parseMessages(client.received.subarray(start)).find((m) => m.type === 'T');
        assert.equal(describedColumns(description.body), expected[sql], sql);
      }
    }
    // One plan per shape (it may have been made by an earlier test of this process already),
    // and one per statement of very long names (20).
    assert.ok(plansMade - before <= 5 + 20, `${plansMade - before} plans made for 120 statements of 6 shapes`);
    assert.ok(plansMade - before >= 20, 'a shape of very long names is not kept');
  });
}

/** The cells of a DataRow body, as text (null for SQL NULL). */
function rowCells(body) {
  const cells = [];
  let at = 2;
  for (let i = 0; i < body.readInt16BE(0); i++) {
    const length = body.readInt32BE(at);
    at += 4;
    cells.push(length < 0 ? null : body.toString('utf8', at, at + length));
    if (length > 0) at += length;
  }
  return cells;
}

for (const mode of MODES) {
  test(`${mode}: a result of one row, in every form, is sent as the general path sends it`, async (t) => {
    const wide = Array.from({ length: 9 }, (_, i) => ({ name: `c${i}`, type: 'int4' }));
    const results = {
      values: { fields: [{ name: 'a', type: 'int4' }, { name: 'b', type: 'text' }, { name: 'n', type: 'text' }], rows: [[1, 'x', null]] },
      object: { fields: [{ name: 'a', type: 'int4' }, { name: 'b', type: 'text' }], rows: [{ a: 2, b: 'y' }] },
      proxy: { fields: [{ name: 'a', type: 'int4' }], rows: [new Proxy([3], {})] },
      wide: { fields: wide, rows: [wide.map((_, i) => i)] },
      short: { fields: [{ name: 'a', type: 'int4' }, { name: 'b', type: 'int4' }], rows: [[1]] },
      unfit: { fields: [{ name: 'a', type: 'int4' }], rows: [['not a number']] },
      getter: { fields: [{ name: 'a', type: 'int4' }], rows: [Object.defineProperty([0], 0, { get() { throw new Error('cell getter'); } })] },
      scalar: { fields: [{ name: 'a', type: 'int4' }], rows: [7] },
    };
    const server = await startServer(mode, { authMode: 'none', onQuery: ({ sql }) => results[sql] });
    t.after(() => server.close());
    const { client } = await connected(server.port);
    t.after(() => client.close());
    const run = async (sql) => {
      const start = client.received.length;
      client.send(frontend.query(sql));
      await client.waitFor(() => readyCount(client.received.subarray(start)) >= 1, 5000);
      return parseMessages(client.received.subarray(start));
    };
    const rowsOf = (messages) => messages.filter((m) => m.type === 'D').map((m) => rowCells(m.body));
    assert.deepEqual(rowsOf(await run('values')), [['1', 'x', null]]);
    assert.deepEqual(rowsOf(await run('object')), [['2', 'y']]);
    assert.deepEqual(rowsOf(await run('proxy')), [['3']]);
    assert.deepEqual(rowsOf(await run('wide')), [['0', '1', '2', '3', '4', '5', '6', '7', '8']]);
    for (const [sql, code, text] of [
      ['short', 'XX000', 'a row has 1 values but the result has 2 fields'],
      ['unfit', '22P02', ''],
      ['getter', 'XX000', 'cell getter'],
      ['scalar', 'XX000', 'a row must be an array or an object'],
    ]) {
      const messages = await run(sql);
      // The RowDescription first, as from PostgreSQL, then the error; no row.
      assert.equal(messages.map((m) => m.type).join(''), 'TEZ', sql);
      const error = errorFields(messages[1].body);
      assert.equal(error.C, code, `${sql}: ${error.M}`);
      assert.ok(error.M.includes(text), `${sql}: ${error.M}`);
    }
  });
}

// onQuery results past every buffer and deadline: ten million rows in bounded memory, a
// client that stops reading pauses the source (and loses nothing), cancel and departure stop
// a statement (its iterator's finally runs), TLS results arrive whole, and a server closed
// under load ends its streams.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { makeCertificates } from './certs.mjs';
import { MODES, gateway, rawClient, startServer, sleep } from './helpers.mjs';

const certs = makeCertificates();
const FIELDS = [{ name: 'i', type: 'int4' }, { name: 'label', type: 'text' }, { name: 'at', type: 'timestamptz' }];

/** A startup packet and a Query, as bytes. */
const startupPacket = () => {
  const body = Buffer.from('\0\x03\0\0user\0u\0\0', 'latin1');
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length + 4);
  return Buffer.concat([length, body]);
};
const queryMessage = (sql) => {
  const body = Buffer.from(`${sql}\0`);
  const head = Buffer.alloc(5);
  head[0] = 0x51;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};

/**
 * Counts DataRows in a byte stream without keeping it: the state carries a partial message
 * header across chunks.
 */
class RowCounter {
  constructor() {
    this.rows = 0;
    this.bytes = 0;
    this.skip = 0;
    this.header = Buffer.alloc(0);
    this.last = 0;
    this.ready = 0;
  }

  feed(chunk) {
    this.bytes += chunk.length;
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const need = 5 - this.header.length;
      const take = chunk.subarray(i, i + need);
      this.header = Buffer.concat([this.header, take]);
      i += take.length;
      if (this.header.length < 5) break;
      const type = this.header[0];
      if (type === 0x44) this.rows += 1;
      if (type === 0x5a) this.ready += 1;
      this.last = type;
      this.skip = this.header.readInt32BE(1) - 4;
      this.header = Buffer.alloc(0);
    }
  }
}

function rssOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

for (const mode of ['js', 'native']) {
  test(`${mode}: ten million rows stream in bounded memory`, { timeout: 240000 }, async (t) => {
    const N = 10_000_000;
    // The young generation pinned at Node 20's size: Node 24's V8 grows it by itself (RSS +40%
    // with no byte of ours more), and the bound below is about our buffers, not V8's choices.
    const child = spawn(process.execPath, ['--max-semi-space-size=16', '--input-type=module', '-e', `
      import net from 'node:net';
      import { createRequire } from 'node:module';
      const gateway = createRequire(${JSON.stringify(import.meta.url)})('../index.js');
      const fields = ${JSON.stringify(FIELDS)};
      const base = Date.UTC(2024, 0, 1);
      function* rows() { for (let i = 0; i < ${N}; i++) yield [i, 'row ' + i, new Date(base + i)]; }
      const options = { authMode: 'none', onQuery: () => ({ fields, rows: rows() }) };
      if (${JSON.stringify(mode)} === 'native') {
        const { port } = await gateway.createServer(options).listen({ port: 0, host: '127.0.0.1' });
        console.log('port', port);
      } else {
        const server = net.createServer({ pauseOnConnect: true }, (s) => new gateway.PostgresConnection(s, options));
        server.listen(0, '127.0.0.1', () => console.log('port', server.address().port));
      }
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => child.kill());
    const [line] = await once(child.stdout, 'data');
    const port = Number(/port (\d+)/.exec(String(line))[1]);
    const raw = await rawClient(port);
    t.after(() => raw.close());
    const counter = new RowCounter();
    raw.socket.removeAllListeners('data');
    raw.socket.on('data', (chunk) => counter.feed(chunk));
    raw.send(startupPacket());
    const started = Date.now();
    while (counter.ready < 1) await sleep(5);
    const baseline = rssOf(child.pid);
    raw.send(queryMessage('select rows'));
    let peak = baseline;
    while (counter.ready < 2 && Date.now() - started < 200000) {
      peak = Math.max(peak, rssOf(child.pid));
      await sleep(50);
    }
    assert.equal(counter.rows, N, 'every row arrived');
    assert.equal(counter.last, 0x5a, 'ReadyForQuery last');
    // Bounded: a few megabytes of buffers, not the result (about 300 MB on the wire).
    assert.ok(peak - baseline < 120 * 1024 * 1024, `RSS grew by ${((peak - baseline) / 1048576).toFixed(0)} MiB (baseline ${(baseline / 1048576).toFixed(0)} MiB, ${(counter.bytes / 1048576).toFixed(0)} MiB sent)`);
  });
}

for (const mode of MODES) {
  test(`${mode}: a client that stops reading pauses the source, and loses nothing when it reads again`, async (t) => {
    const N = 2_000_000;
    let yielded = 0;
    let finished = false;
    const server = await startServer(mode, {
      authMode: 'none',
      onQuery: () => ({
        fields: FIELDS,
        rows: (function* rows() {
          try {
            for (let i = 0; i < N; i++) {
              yielded += 1;
              yield [i, `row ${i}`, new Date(i)];
            }
          } finally {
            finished = true;
          }
        })(),
      }),
    });
    t.after(() => server.close());
    const raw = await rawClient(server.port);
    t.after(() => raw.close());
    const counter = new RowCounter();
    raw.socket.removeAllListeners('data');
    raw.socket.on('data', (chunk) => counter.feed(chunk));
    raw.send(startupPacket());
    while (counter.ready < 1) await sleep(5);
    raw.socket.pause();
    raw.send(queryMessage('select rows'));
    // The source runs until the socket buffers and the gateway's mark are full, then waits.
    let before = -1;
    for (let i = 0; i < 100 && yielded !== before; i++) {
      before = yielded;
      await sleep(100);
    }
    assert.equal(yielded, before, 'the source stopped');
    assert.ok(yielded < N / 4, `paused after ${yielded} rows`);
    assert.equal(finished, false);
    raw.socket.resume();
    while (counter.ready < 2) await sleep(10);
    assert.equal(counter.rows, N);
    assert.equal(yielded, N);
    assert.ok(finished);
  });
}

for (const mode of MODES) {
  test(`${mode}: cancel stops a streaming statement with 57014, and a hook that ignores signal too`, async (t) => {
    const events = [];
    const server = await startServer(mode, {
      authMode: 'none',
      onQuery: ({ sql, signal }) => {
        if (sql === 'select 1') return { fields: [{ name: 'n', type: 'int4' }], rows: [[1]] };
        if (sql === 'select forever') return new Promise(() => {});
        if (sql === 'select pending') {
          // A source whose next() never settles: the cancel must not wait for it.
          return {
            fields: FIELDS,
            rows: {
              [Symbol.asyncIterator]: () => ({
                next: () => new Promise(() => {}),
                return: () => {
                  events.push('returned');
                  return Promise.resolve({ done: true });
                },
              }),
            },
          };
        }
        if (sql === 'select sleep') {
          return new Promise((resolve, reject) => signal.addEventListener('abort', () => {
            events.push('aborted');
            reject(new Error('stopped by the signal'));
          }));
        }
        return {
          fields: FIELDS,
          rows: (async function* rows() {
            try {
              for (let i = 0; ; i++) {
                await new Promise((resolve) => setImmediate(resolve));
                yield [i, `row ${i}`, new Date(i)];
              }
            } finally {
              events.push('finally');
            }
          })(),
        };
      },
    });
    // A raw client, so that what follows the rows is seen exactly (postgres.js, for one,
    // keeps counting rows of a statement that failed into the next result).
    const raw = await rawClient(server.port);
    t.after(() => {
      raw.close();
      return server.close();
    });
    raw.send(startupPacket());
    await raw.waitFor((buf) => buf.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])));
    const key = raw.received.subarray(raw.received.indexOf(Buffer.from([0x4b, 0, 0, 0, 12])) + 5).subarray(0, 8);
    const counter = new RowCounter();
    let seen = raw.received.length;
    const next = () => {
      counter.feed(raw.received.subarray(seen));
      seen = raw.received.length;
    };
    for (const statement of ['select endless', 'select sleep', 'select forever', 'select pending']) {
      const ready = counter.ready + 1;
      raw.send(queryMessage(statement));
      await sleep(200);
      const cancel = await rawClient(server.port);
      const request = Buffer.alloc(16);
      request.writeInt32BE(16, 0);
      request.writeInt32BE(80877102, 4);
      key.copy(request, 8);
      cancel.send(request);
      await raw.waitFor(() => {
        next();
        return counter.ready >= ready;
      });
      cancel.close();
      const tail = raw.received.subarray(raw.received.lastIndexOf(Buffer.from([0x45, 0])));
      assert.match(tail.toString('latin1'), /C57014\0Mcanceling statement due to user request\0/, statement);
      assert.ok(tail.subarray(-6).equals(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])), `${statement}: ErrorResponse, then ReadyForQuery`);
      const start = raw.received.length;
      raw.send(queryMessage('select 1'));
      await raw.waitFor((buf) => buf.subarray(start).includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])));
      next();
      const answer = raw.received.subarray(start);
      assert.equal(String.fromCharCode(...[0, answer.readInt32BE(1) + 1].map((i) => answer[i])), 'TD', `${statement}: the connection goes on`);
    }
    assert.deepEqual(events, ['finally', 'aborted', 'returned']);
  });

  test(`${mode}: a client that leaves mid-stream stops the source`, async (t) => {
    let finished;
    const stopped = new Promise((resolve) => { finished = resolve; });
    let seenSignal;
    const server = await startServer(mode, {
      authMode: 'none',
      onQuery: ({ signal }) => {
        seenSignal = signal;
        return {
          fields: FIELDS,
          rows: (function* rows() {
            try {
              for (let i = 0; ; i++) yield [i, `row ${i}`, new Date(i)];
            } finally {
              finished();
            }
          })(),
        };
      },
    });
    t.after(() => server.close());
    const raw = await rawClient(server.port);
    raw.send(startupPacket());
    await raw.waitFor((buf) => buf.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])));
    raw.send(queryMessage('select endless'));
    await raw.waitFor((buf) => buf.length > 1 << 20);
    raw.socket.destroy();
    await stopped;
    assert.ok(seenSignal.aborted, 'the signal aborted');
  });
}

for (const mode of MODES) {
  test(`${mode}: results of any size arrive whole over TLS`, async (t) => {
    const N = 300_000;
    const server = await startServer(mode, {
      authMode: 'none',
      tls: certs.localhost,
      onQuery: () => ({ fields: FIELDS, rows: Array.from({ length: N }, (_, i) => [i, `row ${i}`, new Date(i)]) }),
    });
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'u', database: 'd', ssl: { rejectUnauthorized: false } });
    await client.connect();
    t.after(() => client.end().then(() => server.close()));
    for (let round = 0; round < 2; round++) {
      const result = await client.query('select rows');
      assert.equal(result.rowCount, N);
      assert.equal(result.rows[N - 1].label, `row ${N - 1}`);
    }
  });
}

test('server.close() under load ends streaming statements and their clients', async () => {
  const sources = [];
  const server = gateway.createServer({
    authMode: 'none',
    onQuery: () => {
      const state = { finished: false };
      sources.push(state);
      return {
        fields: FIELDS,
        rows: (function* rows() {
          try {
            for (let i = 0; ; i++) yield [i, `row ${i}`, new Date(i)];
          } finally {
            state.finished = true;
          }
        })(),
      };
    },
  });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  const clients = await Promise.all(Array.from({ length: 4 }, () => rawClient(port)));
  for (const raw of clients) raw.send(Buffer.concat([startupPacket(), queryMessage('select endless')]));
  await Promise.all(clients.map((raw) => raw.waitFor((buf) => buf.length > 1 << 20)));
  const started = Date.now();
  await server.close({ gracePeriod: 500 });
  assert.ok(Date.now() - started < 5000, `close took ${Date.now() - started} ms`);
  await Promise.all(clients.map((raw) => raw.waitClosed(10000)));
  while (sources.some((s) => !s.finished)) await sleep(10);
  for (const raw of clients) raw.close();
});

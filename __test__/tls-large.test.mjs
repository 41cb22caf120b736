// Nothing is lost under TLS: answers of any size arrive whole (rustls' 64 KiB send buffer cut
// every answer above it), and a FATAL followed by end() always reaches the client before the
// close (the close used to overtake the sealed output in about one connection in six).
import test from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { makeCertificates } from './certs.mjs';
import { MODES, message, psql, startServer } from './helpers.mjs';

const certs = makeCertificates();

/** RowDescription, one text DataRow of `size` bytes of 'x', CommandComplete, ReadyForQuery. */
function bigRow(size) {
  const field = Buffer.concat([Buffer.from('big\0'), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0])]);
  const description = message('T', Buffer.concat([Buffer.from([0, 1]), field]));
  const head = Buffer.alloc(6);
  head.writeInt16BE(1, 0);
  head.writeInt32BE(size, 2);
  const row = message('D', Buffer.concat([head, Buffer.alloc(size, 'x')]));
  return Buffer.concat([description, row, message('C', Buffer.from('SELECT 1\0')), message('Z', Buffer.from('I'))]);
}

/** Answers `select <n>` with one value of n bytes. */
const bigAnswers = () => ({
  authMode: 'none',
  tls: certs.localhost,
  onMessage(data, { isAuthenticated }, connection) {
    if (!isAuthenticated || data[0] !== 0x51) return false;
    const size = Number(/\d+/.exec(data.toString('latin1', 5))[0]);
    connection.sendData(bigRow(size));
    return true;
  },
});

for (const mode of MODES) {
  test(`${mode}: answers of 300 KB and 1 MiB reach psql whole over TLS`, async (t) => {
    const server = await startServer(mode, bigAnswers);
    t.after(() => server.close());
    for (const size of [60_000, 300_000, 1 << 20]) {
      const result = await psql(server.port, ['-Atc', `select ${size}`], { env: { PGSSLMODE: 'require', PGCONNECT_TIMEOUT: '10' } });
      assert.equal(result.code, 0, `${size}: ${result.stderr}`);
      assert.equal(result.stdout.length, size + 1, `${size} bytes and a newline`);
    }
  });

  test(`${mode}: a 16 MiB answer reaches node-postgres whole over TLS`, async (t) => {
    const server = await startServer(mode, bigAnswers);
    t.after(() => server.close());
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'u', ssl: { rejectUnauthorized: false } });
    await client.connect();
    const size = 16 << 20;
    const { rows } = await client.query({ text: `select ${size}`, rowMode: 'array' });
    await client.end();
    assert.equal(rows[0][0].length, size);
    assert.ok(!/[^x]/.test(rows[0][0]));
  });

  test(`${mode}: sendError then end() over TLS never loses the FATAL`, async (t) => {
    const server = await startServer(mode, () => ({
      authMode: 'none',
      tls: certs.localhost,
      onStartup(state, connection) {
        connection.sendError({ severity: 'FATAL', code: '28000', message: 'go away, politely' });
        connection.socket.end();
        return true;
      },
    }));
    t.after(() => server.close());
    let lost = 0;
    for (let round = 0; round < 5; round += 1) {
      const results = await Promise.all(Array.from({ length: 10 }, () => psql(server.port, ['-c', 'select 1'], {
        env: { PGSSLMODE: 'require' },
      })));
      for (const result of results) {
        if (!/FATAL: {2}go away, politely/.test(result.stderr)) lost += 1;
      }
    }
    assert.equal(lost, 0, 'connections that closed without the FATAL');
  });
}

for (const mode of MODES) {
  test(`${mode}: a detached TLS stream nobody reads still sends what JS writes`, async (t) => {
    let detached = null;
    const server = await startServer(mode, () => ({
      authMode: 'none',
      tls: certs.localhost,
      onAuthenticated(state, connection) {
        // Detached and never read: what the client sends piles up behind it.
        detached = connection.detach();
      },
    }));
    t.after(() => server.close());
    const tls = await import('node:tls');
    const net = await import('node:net');
    const { once } = await import('node:events');
    const raw = net.connect(server.port, '127.0.0.1');
    await once(raw, 'connect');
    const int32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
    raw.write(Buffer.concat([int32(8), int32(80877103)]));
    await once(raw, 'data');
    const socket = tls.connect({ socket: raw, ca: certs.ca, servername: 'localhost' });
    await once(socket, 'secureConnect');
    let received = Buffer.alloc(0);
    socket.on('data', (d) => { received = Buffer.concat([received, d]); });
    socket.on('error', () => {});
    const startup = Buffer.from('\0\x03\0\0user\0u\0\0');
    socket.write(Buffer.concat([int32(startup.length + 4), startup]));
    const deadline = Date.now() + 10000;
    while (!detached || !received.includes(Buffer.from('Z\0\0\0\x05I'))) {
      assert.ok(Date.now() < deadline, 'authenticated and detached');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // 2 MiB the detached stream never reads: enough to fill every buffer on the way.
    socket.write(Buffer.alloc(2 << 20, 'q'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    detached.write(Buffer.from('hello from js'));
    while (!received.includes(Buffer.from('hello from js'))) {
      assert.ok(Date.now() < deadline + 5000, `${mode}: JS's write arrived`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    socket.destroy();
  });
}

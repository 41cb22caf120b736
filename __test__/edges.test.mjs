// Malformed, hostile and unusual input over raw sockets: PostgreSQL's answer, then close, and
// the server keeps serving everyone else.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import {
  MODES, errorFields, frontend, oneRowResult, parseMessages, psql, rawClient, sleep, startServer,
} from './helpers.mjs';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

function int32(n) {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** The only ErrorResponse in `bytes`, as fields. */
function theError(bytes, options) {
  const errors = parseMessages(bytes, options).filter((m) => m.type === 'E');
  assert.equal(errors.length, 1, `one ErrorResponse in ${bytes.toString('hex')}`);
  return errorFields(errors[0].body);
}

async function exchange(port, bytes, { leadingByte = false } = {}) {
  const client = await rawClient(port);
  client.send(bytes);
  const received = await client.waitClosed();
  return { received, messages: parseMessages(received, { leadingByte }) };
}

/** After every edge case the server must still serve a normal client. */
async function stillServes(port) {
  const result = await psql(port, ['-c', 'select 1']);
  assert.match(result.stderr, /Queries not yet implemented/, `server still answers: ${result.stderr}`);
}

for (const mode of MODES) {
  test(`${mode}: startup requests get PostgreSQL's answers`, async (t) => {
    const server = await startServer(mode, { authMode: 'none' });
    t.after(() => server.close());

    // GSSENCRequest: 'N', then the client goes on in plaintext.
    let client = await rawClient(server.port);
    client.send(frontend.special(GSSENC_REQUEST));
    await client.waitFor((b) => b.length >= 1);
    assert.equal(client.received.toString(), 'N');
    // SSLRequest without TLS configured: 'N' too.
    client.send(frontend.special(SSL_REQUEST));
    await client.waitFor((b) => b.length >= 2);
    assert.equal(client.received.toString(), 'NN');
    client.send(frontend.startup({ user: 'a' }));
    const greeting = parseMessages((await client.waitFor((b) => b.at(-6) === 0x5a)).subarray(2));
    assert.equal(greeting[0].type, 'R');
    assert.equal(greeting.at(-1).type, 'Z');
    client.close();

    // CancelRequest: no reply at all, and the connection is closed.
    const cancel = await exchange(server.port, frontend.special(CANCEL_REQUEST, Buffer.from([0, 0, 0, 7, 1, 2, 3, 4])));
    assert.equal(cancel.received.length, 0);

    // Protocol 3.2 with a _pq_ option: NegotiateProtocolVersion (3.0, the option), then on.
    client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'a', '_pq_.compression': 'on' }, (3 << 16) | 2));
    const negotiated = parseMessages(await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z')));
    assert.equal(negotiated[0].type, 'v');
    assert.equal(negotiated[0].body.readInt32BE(0), 196608);
    assert.equal(negotiated[0].body.readInt32BE(4), 1);
    assert.equal(negotiated[0].body.toString('utf8', 8), '_pq_.compression\0');
    assert.deepEqual(negotiated.slice(1).map((m) => m.type)[0], 'R');
    client.close();

    // Another major version: FATAL 0A000 with PostgreSQL's text.
    const v4 = await exchange(server.port, frontend.startup({ user: 'a' }, 4 << 16));
    const v4err = theError(v4.received);
    assert.equal(v4err.C, '0A000');
    assert.equal(v4err.M, 'unsupported frontend protocol 4.0: server supports 3.0 to 3.0');

    // No user: FATAL 28000 with PostgreSQL's text.
    const nouser = await exchange(server.port, frontend.startup({ database: 'x' }));
    const nousererr = theError(nouser.received);
    assert.equal(nousererr.C, '28000');
    assert.equal(nousererr.M, 'no PostgreSQL user name specified in startup packet');

    await stillServes(server.port);
  });

  test(`${mode}: the standard ParameterStatus set, BackendKeyData and ReadyForQuery follow authentication`, async (t) => {
    const server = await startServer(mode, { authMode: 'none', serverVersion: '16.9 (tests)', serverParameters: { TimeZone: 'Europe/Paris', custom: 'yes' } });
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u', application_name: 'edge' }));
    const messages = parseMessages(await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z')));
    client.close();
    const params = Object.fromEntries(messages.filter((m) => m.type === 'S').map((m) => m.body.toString().split('\0').slice(0, 2)));
    assert.equal(params.server_version, '16.9 (tests)');
    assert.equal(params.TimeZone, 'Europe/Paris', 'serverParameters replace defaults');
    assert.equal(params.custom, 'yes');
    for (const [name, value] of Object.entries({
      server_encoding: 'UTF8', client_encoding: 'UTF8', DateStyle: 'ISO, MDY', integer_datetimes: 'on',
      standard_conforming_strings: 'on', application_name: 'edge', session_authorization: 'u', IntervalStyle: 'postgres',
    })) {
      assert.equal(params[name], value, name);
    }
    const key = messages.find((m) => m.type === 'K');
    assert.equal(key.body.length, 8);
    assert.ok(key.body.readInt32BE(0) > 0, 'a positive process id');
    assert.equal(messages.at(-1).type, 'Z');
    assert.equal(messages.at(-1).body.toString(), 'I');
  });

  test(`${mode}: messages nobody handled after authentication still get answers`, async (t) => {
    const server = await startServer(mode, { authMode: 'none' });
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    let seen = client.received.length;
    const next = async (bytes, done) => {
      client.send(bytes);
      await client.waitFor((b) => done(parseMessages(b.subarray(seen))));
      const reply = parseMessages(client.received.subarray(seen));
      seen = client.received.length;
      return reply;
    };
    const query = await next(frontend.query('select 1'), (m) => m.some((x) => x.type === 'Z'));
    assert.deepEqual(query.map((m) => m.type), ['E', 'Z']);
    assert.equal(errorFields(query[0].body).C, '0A000');
    // The extended protocol: one error, everything up to Sync skipped, one ReadyForQuery.
    const batch = Buffer.concat([frontend.parse('select 1'), frontend.bind(), frontend.describePortal(), frontend.execute(), frontend.sync()]);
    const extended = await next(batch, (m) => m.some((x) => x.type === 'Z'));
    assert.deepEqual(extended.map((m) => m.type), ['E', 'Z']);
    // Sync alone: just ReadyForQuery.
    assert.deepEqual((await next(frontend.sync(), (m) => m.some((x) => x.type === 'Z'))).map((m) => m.type), ['Z']);
    // Terminate: closed without a word.
    client.send(frontend.terminate());
    await client.waitClosed();
    assert.equal(client.received.length, seen);
  });

  // Malformed input after authentication: see postgres-edges.test.mjs (compared with PostgreSQL).

  test(`${mode}: during authentication only a password is accepted`, async (t) => {
    const server = await startServer(mode, { authMode: 'cleartextPassword', validateCredentials: () => true });
    t.after(() => server.close());
    const { received } = await exchange(server.port, Buffer.concat([frontend.startup({ user: 'u' }), frontend.query('select 1')]));
    const err = theError(received);
    assert.equal(err.C, '08P01');
    assert.equal(err.M, 'expected password response, got message type 81');
  });

  test(`${mode}: a message over maxMessageSize closes the connection before it is buffered`, async (t) => {
    const server = await startServer(mode, { authMode: 'none', maxMessageSize: 20_000 });
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    const seen = client.received.length;
    // A Query whose body is 20 001 bytes: only the header is sent. PostgreSQL closes such a
    // connection without a word (it logs "invalid message length"), and so does the gateway.
    client.send(Buffer.from([0x51, ...int32(20_005)]));
    await client.waitClosed();
    assert.equal(client.received.length, seen);
  });

  test(`${mode}: a message of exactly maxMessageSize is accepted`, async (t) => {
    const server = await startServer(mode, {
      authMode: 'none',
      maxMessageSize: 20_000,
      onMessage: (data, { isAuthenticated }, connection) => {
        if (!isAuthenticated || data[0] !== 0x51) return false;
        connection.sendData(oneRowResult(['n'], [data.length]));
        return true;
      },
    });
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    const seen = client.received.length;
    client.send(frontend.query('x'.repeat(19_999))); // body: 19 999 bytes and the NUL
    const received = await client.waitFor((b) => parseMessages(b.subarray(seen)).some((m) => m.type === 'Z'));
    const row = parseMessages(received.subarray(seen)).find((m) => m.type === 'D');
    assert.equal(row.body.subarray(6).toString(), '20005');
  });

  test(`${mode}: a client that goes away at any point ends only its own connection`, async (t) => {
    const server = await startServer(mode, { authMode: 'md5Password', validateCredentials: () => true });
    t.after(() => server.close());
    // EOF in the middle of the startup packet.
    let client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }).subarray(0, 10));
    client.socket.end();
    await client.waitClosed();
    // Reset (RST) while the server waits for the password.
    client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }));
    await client.waitFor((b) => b.length > 0);
    client.socket.resetAndDestroy();
    // Half-open: the client sends a query then FIN without waiting for anything.
    client = await rawClient(server.port);
    client.send(Buffer.concat([frontend.startup({ user: 'u' }), frontend.password('x'), frontend.query('select 1').subarray(0, 7)]));
    client.socket.end();
    await client.waitClosed();
    // A burst of connections that reset straight away.
    await Promise.all(Array.from({ length: 20 }, async () => {
      const c = net.connect(server.port, '127.0.0.1');
      await once(c, 'connect');
      c.resetAndDestroy();
    }));
    await sleep(100);
    const ok = await psql(server.port, ['-c', 'select 1'], { password: 'x' });
    assert.match(ok.stderr, /Queries not yet implemented/, ok.stderr);
  });

  test(`${mode}: a startup that stalls is closed after authTimeout, without a word`, async (t) => {
    const server = await startServer(mode, { authMode: 'cleartextPassword', authTimeout: 300, validateCredentials: () => true });
    t.after(() => server.close());
    const started = Date.now();
    const silent = await rawClient(server.port);
    await silent.waitClosed(5000);
    assert.equal(silent.received.length, 0);
    const stalled = await rawClient(server.port);
    stalled.send(frontend.startup({ user: 'u' }));
    await stalled.waitClosed(5000);
    assert.deepEqual(parseMessages(stalled.received).map((m) => m.type), ['R'], 'only the password request');
    assert.ok(Date.now() - started < 4000);
    // An authenticated session is not subject to the timeout.
    const client = await rawClient(server.port);
    client.send(Buffer.concat([frontend.startup({ user: 'u' }), frontend.password('pw')]));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    await sleep(600);
    assert.equal(client.ended, false);
    client.close();
  });
}

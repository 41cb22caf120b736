// Malformed, hostile and unusual input over raw sockets: PostgreSQL's answer, then close, and
// the server keeps serving everyone else.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import {
  MODES, errorFields, frontend, parseMessages, psql, rawClient, sleep, startServer,
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
  test(`${mode}: malformed startup packets get FATAL 08P01 and a close`, async (t) => {
    const server = await startServer(mode, { authMode: 'none' });
    t.after(() => server.close());
    for (const [name, bytes] of [
      ['over 10 000 bytes', int32(10_001)],
      ['2 GiB length', int32(0x7fffffff)],
      ['length under 8', int32(3)],
      ['negative length', int32(-1)],
      ['missing final terminator', Buffer.concat([int32(17), int32(196608), Buffer.from('user\0bob\0')])],
      ['SSLRequest with a payload', Buffer.concat([int32(12), int32(SSL_REQUEST), int32(0)])],
    ]) {
      const { received } = await exchange(server.port, bytes);
      const err = theError(received);
      assert.equal(err.S, 'FATAL', name);
      assert.equal(err.C, '08P01', `${name}: ${err.M}`);
    }
    await stillServes(server.port);
  });

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
    const v2 = await exchange(server.port, frontend.startup({ user: 'a' }, 2 << 16));
    const v2err = theError(v2.received);
    assert.equal(v2err.C, '0A000');
    assert.equal(v2err.M, 'unsupported frontend protocol 2.0: server supports 3.0 to 3.0');

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

  test(`${mode}: protocol violations after authentication are FATAL 08P01`, async (t) => {
    const server = await startServer(mode, { authMode: 'none' });
    t.after(() => server.close());
    const startup = frontend.startup({ user: 'u' });
    const cases = [
      ['an unknown message type', Buffer.from([0x7a, 0, 0, 0, 4]), /invalid frontend message type 122/],
      ['a Sync claiming 64 KiB', Buffer.from([0x53, 0, 1, 0, 0]), /invalid message length/],
      ['a length under 4', Buffer.from([0x51, 0, 0, 0, 2]), /invalid message length/],
      ['a Query without its terminator', Buffer.concat([Buffer.from([0x51, 0, 0, 0, 8]), Buffer.from('abcd')]), /not terminated/],
      ['a Bind claiming 30000 parameters', Buffer.from([0x42, 0, 0, 0, 12, 0, 0, 0, 0, 0x75, 0x30, 0, 0]), /message too short/],
    ];
    for (const [name, bytes, text] of cases) {
      const { received } = await exchange(server.port, Buffer.concat([startup, bytes]));
      const err = theError(received);
      assert.equal(err.C, '08P01', name);
      assert.equal(err.S, 'FATAL', name);
      assert.match(err.M, text, name);
    }
    await stillServes(server.port);
  });

  test(`${mode}: during authentication only a password is accepted`, async (t) => {
    const server = await startServer(mode, { authMode: 'cleartextPassword', validateCredentials: () => true });
    t.after(() => server.close());
    const { received } = await exchange(server.port, Buffer.concat([frontend.startup({ user: 'u' }), frontend.query('select 1')]));
    const err = theError(received);
    assert.equal(err.C, '08P01');
    assert.equal(err.M, 'expected password response, got message type 81');
  });

  test(`${mode}: a message over maxMessageSize is refused before it is buffered`, async (t) => {
    const server = await startServer(mode, { authMode: 'none', maxMessageSize: 20_000 });
    t.after(() => server.close());
    const client = await rawClient(server.port);
    client.send(frontend.startup({ user: 'u' }));
    await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'));
    const seen = client.received.length;
    client.send(Buffer.from([0x51, 0, 0, 0x4e, 0x22])); // Query of 20 002 bytes: only the header is sent
    await client.waitClosed();
    const err = theError(client.received.subarray(seen));
    assert.equal(err.C, '08P01');
    assert.match(err.M, /invalid message length 20002/);
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

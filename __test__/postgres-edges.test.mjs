// At the edges of the protocol the gateway answers as a real PostgreSQL does: each hostile or
// malformed input goes to a real server and to every gateway mode, and the outcomes (which
// errors with which severity and SQLSTATE, what follows them, whether the connection stays
// open) must be the same. Where PostgreSQL closes without a word, so does the gateway.
import test from 'node:test';
import assert from 'node:assert/strict';
import { MODES, errorFields, frontend, message, parseMessages, rawClient, startServer } from './helpers.mjs';
import { startPostgres } from './postgres.mjs';

const int32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const int16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const SSL_REQUEST = 80877103;
const startup = frontend.startup({ user: 'postgres', database: 'postgres' });
/** Ends every post-authentication case: a Sync (PostgreSQL skips to it after an error in an
 * extended-protocol message) and a Terminate, so a connection that survives closes too. */
const epilogue = Buffer.concat([frontend.sync(), frontend.terminate()]);

/** Before authentication: the bytes a client sends, and whether a one-byte S/N answer leads. */
const BEFORE_AUTH = [
  ['a declared length of 10 005 (PostgreSQL accepts up to 10 004)', int32(10_005)],
  ['a 2 GiB length', int32(0x7fffffff)],
  ['a length under 8', int32(3)],
  ['a negative length', int32(-1)],
  ['Terminate before the StartupMessage (node-postgres connect(); end())', frontend.terminate()],
  ['a StartupMessage without its final terminator', Buffer.concat([int32(17), int32(196608), Buffer.from('user\0bob\0')])],
  ['an 8-byte startup packet of protocol 2.0', Buffer.concat([int32(8), int32(0x20000)])],
  ['a StartupMessage of protocol 4.0', frontend.startup({ user: 'postgres' }, 0x40000)],
  ['a StartupMessage without a user', frontend.startup({ database: 'postgres' })],
  ['bytes pipelined behind an SSLRequest answered N', Buffer.concat([frontend.special(SSL_REQUEST), startup]), true],
];

/** After authentication (a StartupMessage goes first, the epilogue after). */
const AFTER_AUTH = [
  ['an unknown message type', Buffer.from([0x7a, 0, 0, 0, 4])],
  ['a Sync claiming 64 KiB', Buffer.from([0x53, 0, 1, 0, 0])],
  ['a message length under 4', Buffer.from([0x51, 0, 0, 0, 2])],
  ['a Query without its terminator', message('Q', Buffer.from('abcd'))],
  ['a Describe of type Z', message('D', Buffer.from('Z\0'))],
  ['a Close of type Z', message('C', Buffer.from('Z\0'))],
  ['a Describe without its name terminator', message('D', Buffer.from('Sabc'))],
  ['an Execute cut short', message('E', Buffer.from('\0\0\0'))],
];

/**
 * What a connection got after the greeting: each message as its type (ErrorResponses as
 * `E:<severity>:<SQLSTATE>`), and `closed`. ParameterStatus, BackendKeyData and notices differ
 * between servers and are left out.
 */
function outcome(received, { leadingByte = false, afterGreeting = false } = {}) {
  let bytes = received;
  const seen = [];
  if (bytes[0] === 0x45 && bytes.length > 1 && bytes[1] !== 0) {
    // Protocol 2.0's error format (no length): what PostgreSQL sends a 2.0 client.
    return `E(v2):${bytes.toString('latin1', 1, bytes.indexOf(0, 1))}`;
  }
  if (leadingByte && bytes.length > 0) {
    seen.push(`byte:${String.fromCharCode(bytes[0])}`);
    bytes = bytes.subarray(1);
  }
  let messages = parseMessages(bytes);
  if (afterGreeting) {
    const ready = messages.findIndex((m) => m.type === 'Z');
    assert.ok(ready >= 0, `authenticated: ${received.toString('hex')}`);
    messages = messages.slice(ready + 1);
  }
  for (const m of messages) {
    if ('SKN'.includes(m.type)) continue;
    if (m.type === 'E') {
      const f = errorFields(m.body);
      seen.push(`E:${f.S}:${f.C}`);
    } else {
      seen.push(m.type);
    }
  }
  return seen.join(' ') || 'closed without a word';
}

async function send(port, bytes) {
  const client = await rawClient(port);
  client.send(bytes);
  return client.waitClosed(10_000);
}

test('the gateway answers hostile and malformed input as PostgreSQL does', async (t) => {
  const postgres = await startPostgres({ auth: 'trust' });
  t.after(() => postgres.stop());
  const expected = new Map();
  for (const [name, bytes, leadingByte] of BEFORE_AUTH) {
    expected.set(name, outcome(await send(postgres.port, bytes), { leadingByte }));
  }
  for (const [name, bytes] of AFTER_AUTH) {
    expected.set(name, outcome(await send(postgres.port, Buffer.concat([startup, bytes, epilogue])), { afterGreeting: true }));
  }
  // What PostgreSQL 15 answers, so a reader sees it without running the test.
  t.diagnostic(JSON.stringify(Object.fromEntries(expected), null, 1));

  for (const mode of MODES) {
    await t.test(mode, async () => {
      const server = await startServer(mode, { authMode: 'none' });
      try {
        const got = new Map();
        for (const [name, bytes, leadingByte] of BEFORE_AUTH) {
          got.set(name, outcome(await send(server.port, bytes), { leadingByte }));
        }
        for (const [name, bytes] of AFTER_AUTH) {
          const received = await send(server.port, Buffer.concat([startup, bytes, epilogue]));
          got.set(name, outcome(received, { afterGreeting: true }));
        }
        assert.deepEqual(Object.fromEntries(got), Object.fromEntries(expected));
      } finally {
        await server.close();
      }
    });
  }
});

// The exported surface of pg-gateway 0.2.4, value for value.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { gateway } from './helpers.mjs';

test('exports the same runtime names as pg-gateway 0.2.4, plus createServer', () => {
  for (const name of ['BackendMessageCode', 'FrontendMessageCode', 'PostgresConnection', 'createStartupMessage',
    'generateMd5Salt', 'hashMd5Password', 'md5']) {
    assert.ok(name in gateway, name);
  }
  assert.equal(typeof gateway.createServer, 'function');
});

test('message code enums are numeric enums with reverse mapping, as 0.2.4 ships them', () => {
  assert.equal(gateway.FrontendMessageCode.Query, 81);
  assert.equal(gateway.FrontendMessageCode[81], 'Query');
  assert.equal(gateway.FrontendMessageCode[100], 'CopyData', 'the later duplicate wins, as in TypeScript');
  assert.equal(gateway.FrontendMessageCode.CopyFromChunk, 100);
  assert.equal(gateway.BackendMessageCode.ReadyForQuery, 90);
  assert.equal(gateway.BackendMessageCode[87], 'ReplicationStart');
  assert.equal(Object.keys(gateway.BackendMessageCode).length, 22 + 22, '22 names and their 22 distinct values');
});

test('hashMd5Password is what libpq sends', async () => {
  const salt = new Uint8Array([1, 2, 3, 4]);
  const inner = crypto.createHash('md5').update('secretalice').digest('hex');
  const expected = 'md5' + crypto.createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
  const hash = gateway.hashMd5Password('alice', 'secret', salt);
  assert.ok(hash instanceof Promise, 'async, like 0.2.4');
  assert.equal(await hash, expected);
  assert.notEqual(await gateway.hashMd5Password('alice', 'secret', new Uint8Array([1, 2, 3, 5])), expected);
});

test('md5 and generateMd5Salt', async () => {
  assert.equal(await gateway.md5('abc'), '900150983cd24fb0d6963f7d28e17f72');
  const salt = gateway.generateMd5Salt();
  assert.ok(salt instanceof Uint8Array);
  assert.equal(salt.length, 4);
  assert.notDeepEqual(gateway.generateMd5Salt(), gateway.generateMd5Salt());
});

test('createStartupMessage builds a StartupMessage with no type byte', () => {
  const message = gateway.createStartupMessage({ majorVersion: 3, minorVersion: 0, parameters: { user: 'bob', database: 'db' } });
  assert.deepEqual(message, Buffer.concat([
    Buffer.from([0, 0, 0, 30, 0, 3, 0, 0]), Buffer.from('user\0bob\0database\0db\0\0'),
  ]));
});

test('invalid options are refused at construction with a clear error', async () => {
  assert.throws(() => gateway.createServer({ authMode: 'scram' }), /unknown authMode 'scram'/);
  assert.throws(() => gateway.createServer({ onMessage: 'yes' }), /onMessage must be a function/);
  assert.throws(() => gateway.createServer({ authTimeout: -1 }), /authTimeout must be an integer from 1 to 2147483647/);
  // 2^31 ms would become a 1 ms Node timer on the js driver and cut every connection.
  assert.throws(() => gateway.createServer({ authTimeout: 2 ** 31 }), /authTimeout must be an integer from 1 to 2147483647/);
  assert.throws(() => gateway.createServer({ writeTimeout: 1.5 }), /writeTimeout must be an integer from 0/);
  assert.throws(() => gateway.createServer({ tls: { key: Buffer.alloc(0), cert: Buffer.alloc(0) } }), /tls.key is not PEM/);
  assert.throws(() => gateway.createServer({ tls: { cert: Buffer.alloc(0) } }), /tls.key is required/);
  assert.throws(() => gateway.createServer({ authMode: 'certificate' }), /authMode 'certificate' needs the tls option/);
  assert.throws(() => new gateway.PostgresConnection({}), /needs a connected socket/);
  assert.throws(() => new gateway.PostgresConnection({}, { driver: 'native' }), /needs a connected node:net TCP socket/);
  assert.throws(() => gateway.createServer({ driver: 'fast' }), /unknown driver 'fast'/);
});

test('the default authMode is md5Password, written into the options object as 0.2.4 does', async () => {
  const options = {};
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const connection = new gateway.PostgresConnection(socket, options);
    connection.socket.destroy();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect(server.address().port, '127.0.0.1');
  await new Promise((resolve) => client.on('close', resolve).on('error', () => {}));
  server.close();
  assert.equal(options.authMode, 'md5Password');
  const serverOptions = {};
  gateway.createServer(serverOptions);
  assert.equal(serverOptions.authMode, 'md5Password');
});

test('the hand-written native calls refuse wrong arguments with an exception, never a crash', async () => {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const binding = require('../lib/binding.js');
  const { nativeOptions } = require('../lib/values.js');
  const handle = binding.sessionNew(new binding.NativeConfig(nativeOptions({ authMode: 'none' })));
  const plan = binding.queryPlan([{ name: 'a', type: 'int4' }], null);
  const refused = (call) => assert.throws(call, /pg-gateway-native: bad argument/);
  refused(() => binding.sessionFeed({}, Buffer.alloc(1)));
  refused(() => binding.sessionFeed(handle, 'not bytes'));
  refused(() => binding.sessionFeed(plan, Buffer.alloc(1)));
  refused(() => binding.sessionTakeOutputInto(handle, new Float64Array(2), 0));
  refused(() => binding.sessionQueryCall(handle, new Uint8Array(64)));
  refused(() => binding.sessionQueryRows(handle, handle, [[1]], null, Buffer.alloc(0)));
  refused(() => binding.sessionMessagesDone(handle, 'x'));
  // Missing arguments read as undefined: refused too.
  refused(() => binding.sessionFeed());
  // With right arguments the same calls work.
  assert.equal(typeof binding.sessionFeed(handle, Buffer.alloc(0)), 'number');
  assert.equal(binding.sessionQueryCall(handle, new Uint32Array(binding.QUERY_REGISTERS)), null);
  binding.sessionRelease(handle);
});

// Load on every entry point: 1 000 concurrent authenticated connections, and 20 000
// connect/authenticate/query/disconnect cycles after which open file descriptors and memory are
// back near where they started. Bounded in count and time; figures go to the test's diagnostics.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MODES, frontend, oneRowResult, parseMessages, startServer, until } from './helpers.mjs';

const MiB = 1 << 20;

// A full collection on demand, without --expose-gc on the command line.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc');

/**
 * Memory after a full collection: the native part (RSS less V8's heap: Rust buffers, sockets,
 * Node's own) and the live JS heap. V8's heap sizing differs between Node releases (Node 24
 * keeps a larger young generation), so RSS alone would measure V8's choices, not ours.
 */
function settledMemory() {
  collectGarbage();
  const { rss, heapTotal, heapUsed } = process.memoryUsage();
  return { native: rss - heapTotal, heap: heapUsed };
}
const openFds = () => fs.readdirSync('/proc/self/fd').length;

const options = () => ({
  authMode: 'cleartextPassword',
  validateCredentials: ({ password }) => password === 'pw',
  onMessage(data, { isAuthenticated }, connection) {
    if (!isAuthenticated || data[0] !== 0x51) return false;
    connection.sendData(oneRowResult(['n'], ['1']));
    return true;
  },
});

const PIPELINE = Buffer.concat([frontend.startup({ user: 'u' }), frontend.password('pw'), frontend.query('select 1')]);

/** Connects, authenticates and queries (pipelined); resolves with the socket once answered. */
function connectAndQuery(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no answer in 30 s')); }, 30_000);
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('connect', () => socket.write(PIPELINE));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const types = parseMessages(received).map((m) => m.type);
      if (types.includes('E')) {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`error from the server: ${received.toString('latin1')}`));
      } else if (types.filter((t) => t === 'Z').length === 2) {
        clearTimeout(timer);
        resolve(socket);
      }
    });
  });
}

/** Terminate, then wait for the server to close. */
async function terminate(socket) {
  const closed = once(socket, 'close');
  socket.end(frontend.terminate());
  await closed;
}


function counted(mode) {
  let open = 0;
  return {
    onConnection(connection) {
      open += 1;
      connection.socket.on('close', () => { open -= 1; });
    },
    count: (server) => (mode === 'native' ? server.server.connectionCount : open),
  };
}

for (const mode of MODES) {
  test(`${mode}: 1 000 concurrent authenticated connections`, { timeout: 120_000 }, async (t) => {
    const { onConnection, count } = counted(mode);
    const server = await startServer(mode, options, { onConnection });
    t.after(() => server.close());
    const fdsBefore = openFds();
    const started = Date.now();
    const sockets = [];
    // In waves of 100, so the listen backlog is never the limit being tested.
    for (let wave = 0; wave < 10; wave += 1) {
      sockets.push(...await Promise.all(Array.from({ length: 100 }, () => connectAndQuery(server.port))));
    }
    const connectedMs = Date.now() - started;
    assert.equal(count(server), 1000);
    const rssHeld = process.memoryUsage().rss;
    await Promise.all(sockets.map(terminate));
    await until(() => count(server) === 0, 10_000, 'every connection to close');
    await until(() => openFds() <= fdsBefore + 5, 5000, `fds back to ${fdsBefore} (now ${openFds()})`);
    t.diagnostic(`1000 connections in ${connectedMs} ms, RSS while held ${Math.round(rssHeld / MiB)} MiB, all closed after ${Date.now() - started} ms`);
  });

  test(`${mode}: 20 000 connect/query/disconnect cycles leave fds and memory where they were`, { timeout: 180_000 }, async (t) => {
    const { onConnection, count } = counted(mode);
    const server = await startServer(mode, options, { onConnection });
    t.after(() => server.close());
    const cycles = async (n, workers) => {
      let next = 0;
      await Promise.all(Array.from({ length: workers }, async () => {
        while (next < n) {
          next += 1;
          await terminate(await connectAndQuery(server.port));
        }
      }));
    };
    await cycles(1000, 32); // warm-up: allocators and caches reach their steady state
    await until(() => count(server) === 0, 10_000, 'warm-up connections to close');
    const fdsBefore = openFds();
    const before = settledMemory();
    const started = Date.now();
    await cycles(20_000, 32);
    const elapsed = Date.now() - started;
    await until(() => count(server) === 0, 10_000, 'every connection to close');
    await until(() => openFds() <= fdsBefore + 5, 5000, `fds back to ${fdsBefore} (now ${openFds()})`);
    const after = settledMemory();
    const grew = (part) => Math.round((after[part] - before[part]) / MiB);
    t.diagnostic(`20000 cycles in ${elapsed} ms (${Math.round(20_000 / (elapsed / 1000))}/s), native ${Math.round(before.native / MiB)} -> ${Math.round(after.native / MiB)} MiB, JS heap ${Math.round(before.heap / MiB)} -> ${Math.round(after.heap / MiB)} MiB, fds ${fdsBefore} -> ${openFds()}`);
    // A leak of 2 KiB of native memory per connection would be 40 MiB here, one of 512 bytes of
    // JS objects 10 MiB.
    assert.ok(after.native - before.native < 32 * MiB, `native memory grew ${grew('native')} MiB over 20 000 cycles`);
    assert.ok(after.heap - before.heap < 8 * MiB, `the JS heap grew ${grew('heap')} MiB over 20 000 cycles`);
  });
}

// Shared test helpers: servers on both entry points, a raw-bytes client, and async runners for
// psql and pgbench (sync child processes would block the JS thread the hooks run on).

import net from 'node:net';
import { once } from 'node:events';
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const gateway = require('../index.js');
export const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Starts a server with `options` on a free loopback port: `node:net` sockets handed to
 * `new PostgresConnection` on the default JS-thread driver ('js') or with Rust taking the
 * socket over (`driver: 'native'`, 'adopted'), or the Rust listener ('native').
 * `onConnection(connection)` sees each PostgresConnection created for adopted sockets.
 */
export async function startServer(mode, makeOptions, { pauseOnConnect = true, allowHalfOpen = false, onConnection } = {}) {
  const options = typeof makeOptions === 'function' ? makeOptions : () => makeOptions;
  if (mode === 'native') {
    const server = gateway.createServer(options());
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
    return { port, server, close: () => server.close() };
  }
  const sockets = new Set();
  const server = net.createServer({ pauseOnConnect, allowHalfOpen }, (socket) => {
    const connection = new gateway.PostgresConnection(socket, mode === 'adopted' ? { ...options(), driver: 'native' } : options());
    sockets.add(connection);
    connection.socket.on('close', () => sockets.delete(connection));
    onConnection?.(connection);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    server,
    close: async () => {
      for (const connection of sockets) connection.socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Polls `condition` (sync or async) every 10 ms until it holds; fails after `timeoutMs`,
 * naming `what` it waited for.
 */
export async function until(condition, timeoutMs = 5000, what = 'a condition') {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const MODES = ['js', 'adopted', 'native'];

/** Backend message builders for hand-written responses. */
export function message(type, body = Buffer.alloc(0)) {
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const int16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };

/** RowDescription + one DataRow (text columns) + CommandComplete + ReadyForQuery. */
export function oneRowResult(columns, values) {
  const description = message('T', Buffer.concat([
    int16(columns.length),
    ...columns.flatMap((name) => [Buffer.from(`${name}\0`), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]),
  ]));
  const row = message('D', Buffer.concat([
    int16(values.length),
    ...values.flatMap((v) => { const b = Buffer.from(String(v)); return [int32(b.length), b]; }),
  ]));
  return Buffer.concat([description, row, message('C', Buffer.from('SELECT 1\0')), message('Z', Buffer.from('I'))]);
}

/** Frontend message builders for raw-socket tests. */
export const frontend = {
  startup(params, version = 196608) {
    const body = Buffer.concat([
      int32(version),
      ...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)),
      Buffer.from([0]),
    ]);
    return Buffer.concat([int32(body.length + 4), body]);
  },
  special(code, extra = Buffer.alloc(0)) {
    return Buffer.concat([int32(8 + extra.length), int32(code), extra]);
  },
  query: (sql) => message('Q', Buffer.from(`${sql}\0`)),
  password: (pw) => message('p', Buffer.from(`${pw}\0`)),
  parse: (sql) => message('P', Buffer.from(`\0${sql}\0\0\0`)),
  bind: () => message('B', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])),
  describePortal: () => message('D', Buffer.from('P\0')),
  execute: () => message('E', Buffer.from([0, 0, 0, 0, 0])),
  sync: () => message('S'),
  terminate: () => message('X'),
};

/** Splits backend bytes into messages; single-byte S/N answers come first if `leadingByte`. */
export function parseMessages(buf, { leadingByte = false } = {}) {
  const out = [];
  let offset = 0;
  if (leadingByte && buf.length > 0) {
    out.push({ type: String.fromCharCode(buf[0]), body: Buffer.alloc(0) });
    offset = 1;
  }
  while (buf.length - offset >= 5) {
    const len = buf.readInt32BE(offset + 1);
    if (buf.length - offset < 1 + len) break;
    out.push({ type: String.fromCharCode(buf[offset]), body: buf.subarray(offset + 5, offset + 1 + len) });
    offset += 1 + len;
  }
  return out;
}

/** The fields of an ErrorResponse body, by field letter. */
export function errorFields(body) {
  const fields = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    fields[String.fromCharCode(body[i])] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return fields;
}

/** A raw TCP client that records everything the server sends. */
export async function rawClient(port) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let received = Buffer.alloc(0);
  let ended = false;
  let error = null;
  const waiters = new Set();
  const wake = () => { for (const w of waiters) w(); };
  socket.on('data', (d) => { received = Buffer.concat([received, d]); wake(); });
  socket.on('end', () => { ended = true; wake(); });
  socket.on('close', () => { ended = true; wake(); });
  socket.on('error', (err) => { error = err; ended = true; wake(); });
  const until = (predicate, timeoutMs) => new Promise((resolve, reject) => {
    const check = () => {
      if (predicate()) { clearTimeout(timer); waiters.delete(check); resolve(); }
    };
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`timed out; received ${received.toString('hex')}`)); }, timeoutMs);
    waiters.add(check);
    check();
  });
  return {
    socket,
    send(bytes) { socket.write(bytes); },
    get received() { return received; },
    get ended() { return ended; },
    get error() { return error; },
    /** Waits until the received bytes satisfy `predicate` (or the server closed). */
    async waitFor(predicate, timeoutMs = 10000) {
      await until(() => predicate(received) || ended, timeoutMs);
      return received;
    },
    /** Waits until the server has closed the connection. */
    async waitClosed(timeoutMs = 10000) {
      await until(() => ended, timeoutMs);
      return received;
    },
    close() { socket.destroy(); },
  };
}

/** Runs a command without blocking the event loop. */
export function run(command, args, { env = {}, timeout = 60000, input, cwd, replaceEnv = false } = {}) {
  return new Promise((resolve) => {
    const childEnv = replaceEnv ? env : { ...process.env, ...env };
    const child = execFile(command, args, { env: childEnv, timeout, cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

export function psql(port, args, { user = 'postgres', password, database = 'postgres', env = {} } = {}) {
  return run('psql', ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', database, '-v', 'ON_ERROR_STOP=1', ...args], {
    env: { PGPASSWORD: password ?? '', PGCONNECT_TIMEOUT: '10', PGSSLMODE: 'disable', ...env },
  });
}

/** Starts `node examples/<name> --port 0 ...` and waits for its "listening on host:port" line. */
export async function startExample(name, args = ['--port', '0'], env = {}) {
  const child = spawn(process.execPath, [path.join(root, 'examples', name), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let output = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${output}`)), 120000);
    const onData = (d) => {
      output += d;
      const match = /listening on [^\s]+:(\d+)/.exec(output);
      if (match) { clearTimeout(timer); resolve(Number(match[1])); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}:\n${output}`)); });
  });
  return {
    port,
    child,
    get output() { return output; },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      return code;
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

#!/usr/bin/env node
// PGlite (PostgreSQL in WebAssembly) served over TCP: the README's PGlite example, made to work
// on current PGlite and with several clients at once. For real use, run `pg-gateway-native serve`,
// which also keeps each client's prepared statements and settings to itself.
//
//   node examples/pglite.mjs [--port 5432] [--host 127.0.0.1] [--data-dir ./pgdata]
//   PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres

import net from 'node:net';
import { parseArgs } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { PostgresConnection, hashMd5Password } from 'pg-gateway-native';

const HELP = `Serve PGlite (PostgreSQL compiled to WebAssembly) over TCP.

Usage: node examples/pglite.mjs [options]

Options:
  --port <n>        TCP port (default 5432; 0 picks a free one)
  --host <ip>       address to listen on (default 127.0.0.1)
  --data-dir <dir>  keep the database in this directory (default: in memory, gone on exit)
  --user <name>     the user clients log in as (default postgres)
  --password <pw>   that user's password (default postgres)
  --auth <mode>     md5Password (default), cleartextPassword or none
  --verbose         log every connection
  -h, --help        show this help

Connect with:  PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres`;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '5432' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string' },
    user: { type: 'string', default: 'postgres' },
    password: { type: 'string', default: 'postgres' },
    auth: { type: 'string', default: 'md5Password' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port '${args.port}'\n\n${HELP}`);
  process.exit(2);
}

const started = Date.now();
const where = args['data-dir'] ? `data directory ${args['data-dir']}` : 'in memory';
console.log(`starting PGlite (${where}) ...`);
const db = new PGlite(args['data-dir']);
await db.waitReady;
const { rows } = await db.query('show server_version');
const serverVersion = `${rows[0].server_version} (PGlite)`;
console.log(`PGlite ${rows[0].server_version} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// PGlite is one PostgreSQL session. Clients take turns: a client holds the session from its
// first message until PGlite is idle again outside a transaction, so extended-protocol batches
// and transactions of different clients never interleave.
let owner = null;
const waiting = [];
async function acquire(connection) {
  while (owner !== null && owner !== connection) await new Promise((resolve) => waiting.push(resolve));
  owner = connection;
}
function release(connection) {
  if (owner !== connection) return;
  owner = null;
  waiting.shift()?.();
}
const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);

function serve(socket) {
  const pending = []; // extended-protocol messages waiting for their Sync or Flush
  const connection = new PostgresConnection(socket, {
    serverVersion,
    authMode: args.auth,
    async validateCredentials(credentials) {
      if (credentials.user !== args.user) return false;
      if (credentials.authMode === 'cleartextPassword') return credentials.password === args.password;
      return credentials.hash === (await hashMd5Password(args.user, args.password, credentials.salt));
    },
    onAuthenticated(state) {
      if (args.verbose) console.log(`client ${socket.remoteAddress}:${socket.remotePort} logged in as ${state.clientInfo.parameters.user}`);
    },
    async onMessage(data, { isAuthenticated }) {
      if (!isAuthenticated) return false;
      const type = data[0];
      if (type === 0x58) return false; // Terminate: the built-ins close the connection
      // Parse, Bind, Describe, Execute, Close wait for the Sync (or Flush) that ends the batch,
      // so PGlite runs the whole batch in one call.
      if (type === 0x50 || type === 0x42 || type === 0x44 || type === 0x45 || type === 0x43) {
        pending.push(data);
        return true;
      }
      await acquire(connection);
      try {
        const request = pending.length ? Buffer.concat([...pending.splice(0), data]) : data;
        const response = await db.runExclusive(() => db.execProtocolRaw(request));
        connection.sendData(response);
      } catch (err) {
        release(connection);
        throw err; // becomes an ErrorResponse (and ReadyForQuery) for this client
      }
      // Query and Sync end with ReadyForQuery: give the session up unless a transaction is open.
      if ((type === 0x51 || type === 0x53) && !db.isInTransaction()) release(connection);
      return true;
    },
  });
  connection.socket.on('close', async () => {
    if (args.verbose) console.log(`client ${socket.remoteAddress}:${socket.remotePort} disconnected`);
    if (owner !== connection) return;
    // The client left mid-batch or mid-transaction: end both, then let the next client in.
    try {
      await db.runExclusive(() => db.execProtocolRaw(SYNC));
      if (db.isInTransaction()) await db.exec('ROLLBACK');
    } finally {
      release(connection);
    }
  });
}

const server = net.createServer({ pauseOnConnect: true }, serve);
server.on('error', (err) => {
  console.error(`cannot listen on ${args.host}:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, args.host, () => {
  const address = server.address();
  console.log(`listening on ${address.address}:${address.port}`);
  console.log(`connect with: PGPASSWORD=${args.password} psql -h ${address.address} -p ${address.port} -U ${args.user}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    console.log(`${signal}: shutting down`);
    server.close();
    await db.close();
    process.exit(0);
  });
}

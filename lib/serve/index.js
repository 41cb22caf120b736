'use strict';
// `pg-gateway-native serve`: one PGlite served to many PostgreSQL clients at once. The gateway
// does startup, authentication and TLS; each client's messages reach PGlite in turns
// (see host.js and client.js).

const path = require('node:path');
const net = require('node:net');
const { createServer, PostgresConnection, hashMd5Password, createScramSha256Secret } = require('../../index.js');
const { PgliteHost } = require('./host.js');
const { ServeClient } = require('./client.js');
const wire = require('./wire.js');
const { lockDataDir } = require('./lock.js');

/** ParameterStatus values PostgreSQL reports at startup, read from PGlite. */
const REPORTED = ['server_version', 'server_encoding', 'client_encoding', 'DateStyle', 'IntervalStyle', 'TimeZone',
  'integer_datetimes', 'standard_conforming_strings', 'is_superuser', 'default_transaction_read_only', 'in_hot_standby',
  'scram_iterations', 'search_path'];

async function loadPglite() {
  try {
    return await import('@electric-sql/pglite');
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') {
      const error = new Error('serve needs PGlite, which is not installed. Install it next to pg-gateway-native:\n\n  npm install @electric-sql/pglite\n');
      error.code = 'PGLITE_MISSING';
      throw error;
    }
    throw err;
  }
}

/** PGlite's contrib extensions by name (`pg_trgm`, `vector`, ...), loaded from its package. */
async function loadExtensions(names) {
  const extensions = {};
  for (const name of names) {
    let module;
    for (const specifier of [`@electric-sql/pglite/contrib/${name}`, `@electric-sql/pglite/${name}`]) {
      try {
        module = await import(specifier);
        break;
      } catch {
        // the next place
      }
    }
    const extension = module?.[name];
    if (!extension) throw Object.assign(new Error(`unknown PGlite extension '${name}'`), { code: 'BAD_OPTION' });
    extensions[name] = extension;
  }
  return extensions;
}

/** The authentication options of the gateway for `auth` and the users (name -> password). */
function authOptions(auth, users) {
  switch (auth) {
    case 'none':
      return { authMode: 'none' };
    case 'password':
      return {
        authMode: 'cleartextPassword',
        validateCredentials: (c) => users.has(c.user) && users.get(c.user) === c.password,
      };
    case 'md5':
      return {
        authMode: 'md5Password',
        async validateCredentials(c) {
          return users.has(c.user) && c.hash === (await hashMd5Password(c.user, users.get(c.user), c.salt));
        },
      };
    case 'scram': {
      const secrets = new Map([...users].map(([user, password]) => [user, createScramSha256Secret(password)]));
      return { authMode: 'scramSha256', getScramSecret: ({ user }) => secrets.get(user) ?? null };
    }
    default:
      throw Object.assign(new Error(`unknown --auth '${auth}'`), { code: 'BAD_OPTION' });
  }
}

/**
 * Starts PGlite and the server. `options`: the parsed command line (see cli.js). Resolves to
 * `{ address, close() }` once listening.
 */
async function serve(options, log) {
  const started = Date.now();
  const { PGlite } = await loadPglite();
  const extensions = await loadExtensions(options.extensions);
  const unlock = options.dataDir ? lockDataDir(path.resolve(options.dataDir)) : () => {};
  let db;
  try {
    log.info(`starting PGlite (${options.dataDir ? `data directory ${path.resolve(options.dataDir)}` : 'in memory'})`);
    db = await PGlite.create(options.dataDir, { extensions });
  } catch (err) {
    unlock();
    throw err;
  }
  const host = new PgliteHost(db, { log, queueTimeout: options.queueTimeout, maxWaiting: options.maxConnections });
  await host.start();
  // Each configured user is a role, so that it can be the client's session user: a superuser,
  // as postgres is (PGlite is one user's database; roles made with SQL are the finer tool).
  for (const user of options.users.keys()) {
    const { rows } = await db.query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [user]);
    if (rows.length === 0) {
      await db.exec(`CREATE ROLE ${wire.identifier(user)} LOGIN SUPERUSER`);
      log.info(`created role ${user}`);
    }
  }
  const reported = await db.query(`SELECT name, setting FROM pg_catalog.pg_settings WHERE name = ANY($1)`, [REPORTED]);
  const serverParameters = Object.fromEntries(reported.rows.map((r) => [r.name, r.name === 'server_version' ? `${r.setting} (PGlite)` : r.setting]));
  const database = (await db.query('SELECT current_database() AS name')).rows[0].name;
  log.info(`PGlite ${serverParameters.server_version} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  let nextId = 1;
  let live = 0;
  const clients = new Map(); // connection -> ServeClient
  // For close(): a client holding PGlite (in a transaction or batch) or waiting for it.
  const isBusy = (connection) => {
    const client = clients.get(connection);
    return client !== undefined && (host.turns.owner === client || host.turns.isWaiting(client));
  };
  const gatewayOptions = {
    ...authOptions(options.auth, options.users),
    serverVersion: serverParameters.server_version,
    serverParameters,
    ...(options.tls ? { tls: options.tls } : {}),
    onStartup(state, connection) {
      const { user, database: wanted } = state.clientInfo.parameters;
      const refuse = (code, message) => {
        log.info(`refused ${user}@${wanted ?? database}: ${message}`);
        connection.sendError({ severity: 'FATAL', code, message });
        connection.socket.end();
        return true;
      };
      if (live >= options.maxConnections) return refuse('53300', 'sorry, too many clients already');
      if ((wanted ?? user) !== database) return refuse('3D000', `database "${wanted ?? user}" does not exist`);
      live += 1;
      const client = new ServeClient(host, connection, nextId++, { idleInTransactionTimeout: options.idleInTransactionTimeout, log, reported: serverParameters });
      clients.set(connection, client);
      connection.socket.on('close', () => {
        live -= 1;
        clients.delete(connection);
        log.debug(`client ${client.id} disconnected`);
        client.end().catch((err) => log.error(`client ${client.id}: ${err.message}`));
      });
      return false;
    },
    onAuthenticated(state, connection) {
      const client = clients.get(connection);
      client?.start(state);
      log.debug(`client ${client?.id} connected as ${state.clientInfo.parameters.user}`);
    },
    onMessage(data, state, connection) {
      if (!state.isAuthenticated) return false;
      const client = clients.get(connection);
      if (!client) return false;
      return client.message(data);
    },
    onCancel(state, connection) {
      clients.get(connection)?.cancel();
    },
  };
  const server = process.env.PGGN_SERVE_DRIVER === 'native' ? createServer(gatewayOptions) : jsServer(gatewayOptions, isBusy);
  host.onBroken = (err) => {
    // PGlite cannot go on: say so and stop, rather than answer nothing forever.
    log.error(`PGlite cannot go on after: ${err?.message ?? err}; shutting down`);
    process.exitCode = 70;
    close().catch(() => {});
  };
  let address;
  try {
    address = await server.listen({ port: options.port, host: options.host, socketDir: options.socketDir });
  } catch (err) {
    await db.close().catch(() => {});
    unlock();
    throw err;
  }
  log.info(`listening on ${address.address}:${address.port}`);
  if (address.socket) log.info(`listening on Unix socket ${address.socket}`);

  let closing = null;
  function close({ gracePeriod = options.shutdownTimeout } = {}) {
    closing ??= (async () => {
      await server.close({ gracePeriod });
      // Whatever a client left open is rolled back before PGlite closes.
      for (const client of clients.values()) await client.end().catch(() => {});
      if (!host.broken) {
        try {
          await host.raw(Buffer.concat([wire.SYNC]));
          if (db.isInTransaction()) await db.exec('ROLLBACK');
        } catch {
          // closing anyway
        }
      }
      await db.close().catch((err) => log.error(`closing PGlite: ${err.message}`));
      unlock();
      log.info('stopped');
    })();
    return closing;
  }
  return { address, database, close, db };
}

/**
 * The gateway on the JS-thread driver, with createServer's listen/close. PGlite runs on the JS
 * thread anyway, so every message would cross from Rust's threads to it and back on the native
 * listener; on this driver it does not, which halves a one-client round trip.
 */
function jsServer(gatewayOptions, isBusy) {
  const connections = new Set();
  const accept = (socket) => {
    if (socket.setNoDelay) socket.setNoDelay(true);
    socket.on('error', () => {});
    const connection = new PostgresConnection(socket, gatewayOptions);
    connections.add(connection);
    socket.on('close', () => connections.delete(connection));
  };
  const server = net.createServer({ pauseOnConnect: true }, accept);
  /** The Unix-domain socket (`--socket-dir`), named as PostgreSQL names it. */
  let unix = null;
  const listenOn = (target, ...args) => new Promise((resolve, reject) => {
    target.once('error', reject);
    target.listen(...args, () => {
      target.off('error', reject);
      resolve(target.address());
    });
  });
  return {
    async listen({ port, host, socketDir }) {
      const { address, family, port: bound } = await listenOn(server, port, host);
      if (!socketDir) return { address, family, port: bound };
      const socket = path.join(path.resolve(socketDir), `.s.PGSQL.${bound}`);
      await removeStaleSocket(socket);
      unix = net.createServer({ pauseOnConnect: true }, accept);
      try {
        await listenOn(unix, socket);
        // Anyone on the machine may connect, as PostgreSQL's default unix_socket_permissions
        // (0777) allows: authentication decides, not the file mode.
        require('node:fs').chmodSync(socket, 0o777);
      } catch (err) {
        server.close();
        unix.close();
        throw err;
      }
      return { address, family, port: bound, socket };
    },
    /** Stops accepting; idle clients get FATAL 57P01 now, the others at `gracePeriod`. */
    async close({ gracePeriod }) {
      server.close();
      unix?.close();
      const bye = (connection) => {
        connection.sendError({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' });
        connection.socket.end();
      };
      for (const connection of connections) {
        if (!isBusy(connection)) bye(connection);
      }
      const deadline = Date.now() + gracePeriod;
      while (connections.size > 0 && Date.now() < deadline) {
        for (const connection of connections) {
          if (!isBusy(connection) && !connection.socket.writableEnded) bye(connection);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      for (const connection of connections) {
        if (!connection.socket.writableEnded) bye(connection);
        setTimeout(() => connection.socket.destroy(), 1000).unref();
      }
    },
  };
}

/**
 * A socket file left by a server that died is removed; one that answers belongs to a live
 * server, and listening fails with EADDRINUSE as for a TCP port.
 */
async function removeStaleSocket(file) {
  const fs = require('node:fs');
  if (!fs.existsSync(file)) return;
  const live = await new Promise((resolve) => {
    const probe = net.connect(file, () => {
      probe.destroy();
      resolve(true);
    });
    // Only a refused connection means nobody listens (a full backlog is someone).
    probe.on('error', (err) => resolve(err.code !== 'ECONNREFUSED'));
  });
  if (live) throw Object.assign(new Error(`${file} is in use by another server`), { code: 'EADDRINUSE' });
  fs.unlinkSync(file);
}

module.exports = { serve, loadPglite };

'use strict';
// The command line of `pg-gateway-native serve`: options, help, log lines, signals.

const fs = require('node:fs');
const { parseArgs } = require('node:util');

const VERSION = require('../../package.json').version;

const HELP = `pg-gateway-native serve: PGlite (PostgreSQL in WebAssembly) for many clients at once.

Usage: pg-gateway-native serve [options]
       npx pg-gateway-native serve --data-dir ./pgdata

Every client gets its own prepared statements, settings and transactions; clients take turns
on the one PGlite (a client holds it while a transaction or batch is open).

Options:
  --data-dir <dir>          keep the database in <dir> (default: in memory, gone on exit)
  --host <address>          address to listen on (default 127.0.0.1)
  --port <n>                TCP port (default 5432; 0 picks a free one)
  --socket-dir <dir>        also listen on the Unix socket <dir>/.s.PGSQL.<port>, where psql
                            looks without -h (Debian: /var/run/postgresql; psql -h <dir>)
  --auth <mode>             scram (default), md5, password (cleartext) or none
  --user <name>             the user clients log in as (default postgres)
  --password <password>     that user's password (default postgres)
  --users-file <file>       users instead: one 'name:password' per line
  --tls-cert <file>         PEM certificate chain: clients may use TLS (sslmode=require)
  --tls-key <file>          PEM private key for --tls-cert
  --max-connections <n>     clients at once (default 100); beyond: FATAL 53300
  --idle-in-transaction-timeout <ms>
                            a client idle inside a transaction this long is disconnected
                            (FATAL 25P03) and its transaction rolled back (default 60000; 0: never)
  --queue-timeout <ms>      how long a statement waits for its turn before ERROR 55P03
                            (default 30000; 0: forever)
  --shutdown-timeout <ms>   on SIGINT/SIGTERM, how long running clients may finish (default 5000)
  --extensions <a,b>        PGlite extensions to load (vector, pg_trgm, ...); then CREATE EXTENSION
  --log-level <level>       error, warn, info (default) or debug (every connection)
  -h, --help                this help
  -v, --version             the version

Connect with:  PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres`;

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 };

function createLogger(level, stream = process.stderr) {
  const max = LEVELS[level];
  const line = (name) => (message) => {
    if (LEVELS[name] <= max) stream.write(`${new Date().toISOString()} ${name.toUpperCase().padEnd(5)} ${message}\n`);
  };
  return { error: line('error'), warn: line('warn'), info: line('info'), debug: line('debug') };
}

class UsageError extends Error {}

function integer(name, value, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const n = Number(value);
  if (!/^\d+$/.test(String(value)) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got '${value}'`);
  }
  return n;
}

function readUsers(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --users-file ${file}: ${err.message}`);
  }
  const users = new Map();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new UsageError(`${file}:${i + 1}: expected 'name:password'`);
    users.set(line.slice(0, colon), line.slice(colon + 1));
  }
  if (users.size === 0) throw new UsageError(`${file} names no users`);
  return users;
}

/** The options of `serve` from its arguments; throws UsageError for bad ones. */
function parseServeArgs(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'data-dir': { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '5432' },
        auth: { type: 'string', default: 'scram' },
        user: { type: 'string' },
        password: { type: 'string' },
        'users-file': { type: 'string' },
        'socket-dir': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'max-connections': { type: 'string', default: '100' },
        'idle-in-transaction-timeout': { type: 'string', default: '60000' },
        'queue-timeout': { type: 'string', default: '30000' },
        'shutdown-timeout': { type: 'string', default: '5000' },
        extensions: { type: 'string', default: '' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(err.message);
  }
  if (values.help || values.version) return { help: values.help, version: values.version };
  const auth = values.auth === 'trust' ? 'none' : values.auth;
  if (!['scram', 'md5', 'password', 'none'].includes(auth)) {
    throw new UsageError(`--auth must be scram, md5, password or none, got '${values.auth}'`);
  }
  if (!(values['log-level'] in LEVELS)) throw new UsageError(`--log-level must be error, warn, info or debug, got '${values['log-level']}'`);
  if (values['users-file'] && (values.user || values.password)) throw new UsageError('give --users-file or --user/--password, not both');
  const users = values['users-file']
    ? readUsers(values['users-file'])
    : new Map([[values.user ?? 'postgres', values.password ?? 'postgres']]);
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw new UsageError('--tls-cert and --tls-key go together');
  let tls;
  if (values['tls-cert']) {
    try {
      tls = { cert: fs.readFileSync(values['tls-cert']), key: fs.readFileSync(values['tls-key']) };
    } catch (err) {
      throw new UsageError(`cannot read the TLS files: ${err.message}`);
    }
  }
  return {
    dataDir: values['data-dir'],
    host: values.host,
    socketDir: values['socket-dir'],
    port: integer('port', values.port, { max: 65535 }),
    auth,
    users,
    tls,
    maxConnections: integer('max-connections', values['max-connections'], { min: 1, max: 10000 }),
    idleInTransactionTimeout: integer('idle-in-transaction-timeout', values['idle-in-transaction-timeout']),
    queueTimeout: integer('queue-timeout', values['queue-timeout']),
    shutdownTimeout: integer('shutdown-timeout', values['shutdown-timeout']),
    extensions: values.extensions.split(',').map((s) => s.trim()).filter(Boolean),
    logLevel: values['log-level'],
  };
}

/** Runs `serve` from the command line until SIGINT or SIGTERM. */
async function main(argv) {
  let options;
  try {
    options = parseServeArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`pg-gateway-native serve: ${err.message}\nTry 'pg-gateway-native serve --help'.\n`);
    process.exitCode = 2;
    return;
  }
  if (options.help) return void process.stdout.write(`${HELP}\n`);
  if (options.version) return void process.stdout.write(`pg-gateway-native ${VERSION}\n`);
  const log = createLogger(options.logLevel);
  const { serve } = require('./index.js');
  let running;
  try {
    running = await serve(options, log);
  } catch (err) {
    log.error(err.code === 'EADDRINUSE' || /in use/i.test(err.message)
      ? `cannot listen on ${options.host}:${options.port}: ${err.message}`
      : err.message);
    process.exitCode = err.code === 'PGLITE_MISSING' ? 3 : 1;
    return;
  }
  const { address } = running;
  const user = [...options.users.keys()][0];
  log.info(`connect with: psql "postgresql://${user}@${address.address}:${address.port}/${running.database}${options.tls ? '?sslmode=require' : ''}"`);
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      if (stopping) {
        log.warn(`${signal} again: stopping now`);
        process.exit(1);
      }
      stopping = true;
      log.info(`${signal}: no new clients; running ones have ${options.shutdownTimeout} ms to finish`);
      running.close().then(() => process.exit(process.exitCode ?? 0), (err) => {
        log.error(`shutdown: ${err.message}`);
        process.exit(1);
      });
    });
  }
}

module.exports = { main, parseServeArgs, createLogger, HELP, UsageError };

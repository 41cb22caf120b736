#!/usr/bin/env node
// What an operator sees: connection lines as JSON (pino's format, so `| pino-pretty` reads
// them), failed hooks through onError, and the server's counters every `--stats-every` seconds
// and at shutdown.
//
//   node examples/observe.mjs [--port 5435] [--log-level debug]
//   PGPASSWORD=secret psql -h 127.0.0.1 -p 5435 -U alice -c 'select 1'

import { parseArgs } from 'node:util';
import { createServer } from 'pg-gateway-native';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '5435' },
    host: { type: 'string', default: '127.0.0.1' },
    'log-level': { type: 'string', default: 'info' },
    'stats-every': { type: 'string', default: '60' },
  },
});

/** One JSON line per entry on stdout; `pino()` itself would do as the logger. */
const log = (entry) => console.log(JSON.stringify({ time: Date.now(), ...entry }));

const server = createServer({
  authMode: 'cleartextPassword',
  validateCredentials: (credentials) => credentials.authMode === 'cleartextPassword'
    && credentials.user === 'alice' && credentials.password === 'secret',
  onMessage(data, { isAuthenticated }) {
    // A bug in a hook: the client gets XX000, the operator gets the stack through onError.
    if (isAuthenticated && data[0] === 0x51 && data.includes('boom')) throw new Error('boom');
    return false;
  },
  onError(error, state) {
    // `cause` is what the hook threw: its stack points at the bug.
    const stack = error.cause instanceof Error ? error.cause.stack : error.stack;
    log({ level: 'error', msg: error.message, kind: error.kind, user: state?.clientInfo?.parameters.user, stack });
  },
  logger: log,
  logLevel: /** @type {'debug' | 'info' | 'warn' | 'error'} */ (args['log-level']),
});

const printStats = () => log({ level: 'info', msg: 'stats', ...server.stats() });
setInterval(printStats, Number(args['stats-every']) * 1000).unref();

const { address, port } = await server.listen({ port: Number(args.port), host: args.host });
console.log(`observe server listening on ${address}:${port}`);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await server.close({ gracePeriod: 2000 });
    printStats();
    process.exit(0);
  });
}

#!/usr/bin/env node
// Serving a database that is not PostgreSQL: every statement gets a one-row result from
// `onQuery`. The gateway speaks the simple and the extended query protocol itself (psql,
// pgbench in every mode, node-postgres parameters, postgres.js, JDBC) and encodes the values;
// this file only says what a query returns. Swap `execute` for your engine.
//
//   node examples/fixed-result.mjs [--port 5433] [--host 127.0.0.1]
//   psql -h 127.0.0.1 -p 5433 -U anyone -c 'select whatever'

import net from 'node:net';
import { parseArgs } from 'node:util';
import { PostgresConnection } from 'pg-gateway-native';

const FIELDS = [{ name: 'answer', type: 'text' }];

/** The "database": what any statement returns. */
function execute(sql) {
  return { fields: FIELDS, rows: [[`you said: ${sql.trim()}`]] };
}

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '5433' }, host: { type: 'string', default: '127.0.0.1' } },
});

const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  new PostgresConnection(socket, {
    serverVersion: '16.3 (fixed-result example)',
    authMode: 'none',
    onQuery: ({ sql }) => execute(sql),
    // Clients that prepare a statement before running it (postgres.js, asyncpg, JDBC) ask
    // what it returns; every statement here returns the one text column.
    onDescribe: () => ({ fields: FIELDS }),
  });
});

server.listen(Number(args.port), args.host, () => {
  const { address, port } = server.address();
  console.log(`fixed-result server listening on ${address}:${port}`);
});

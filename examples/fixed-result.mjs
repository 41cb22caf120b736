#!/usr/bin/env node
// Serving a database that is not PostgreSQL: every query gets a hand-built one-row result.
// This is the template for putting a Postgres wire front on anything. It answers the simple
// query protocol (psql, pgbench -M simple) and the extended one (node-postgres parameters,
// pgbench -M extended, JDBC), so every client works against it.
//
//   node examples/fixed-result.mjs [--port 5433] [--host 127.0.0.1]
//   psql -h 127.0.0.1 -p 5433 -U anyone -c 'select whatever'

import net from 'node:net';
import { parseArgs } from 'node:util';
import { PostgresConnection } from 'pg-gateway-native';

const TEXT_OID = 25;

/** One backend message: type byte, Int32 length, body. */
function message(type, ...parts) {
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
const int16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstring = (s) => Buffer.from(`${s}\0`);

/** RowDescription for text columns. */
function rowDescription(columns) {
  return message('T', int16(columns.length), ...columns.flatMap((name) => [
    cstring(name), int32(0), int16(0), int32(TEXT_OID), int16(-1), int32(-1), int16(0),
  ]));
}
function dataRow(values) {
  return message('D', int16(values.length), ...values.flatMap((v) => {
    const bytes = Buffer.from(String(v));
    return [int32(bytes.length), bytes];
  }));
}
const commandComplete = (tag) => message('C', cstring(tag));
const readyForQuery = (status = 'I') => message('Z', Buffer.from(status));

/** The "database": what any query returns. Swap this for your engine. */
function execute(sql) {
  return { columns: ['answer'], rows: [[`you said: ${sql.trim()}`]] };
}

/** Answers one client. Returns true for every message it handled. */
function createHandler(connection) {
  let sql = ''; // the statement of the unnamed prepared statement (extended protocol)
  return (data) => {
    const type = String.fromCharCode(data[0]);
    switch (type) {
      case 'Q': {
        const query = data.toString('utf8', 5, data.length - 1);
        if (query.trim() === '') {
          connection.sendData(Buffer.concat([message('I'), readyForQuery()]));
          return true;
        }
        const { columns, rows } = execute(query);
        connection.sendData(Buffer.concat([
          rowDescription(columns), ...rows.map(dataRow), commandComplete(`SELECT ${rows.length}`), readyForQuery(),
        ]));
        return true;
      }
      case 'P': { // Parse: name\0 query\0 ...
        const nameEnd = data.indexOf(0, 5);
        sql = data.toString('utf8', nameEnd + 1, data.indexOf(0, nameEnd + 1));
        connection.sendData(message('1'));
        return true;
      }
      case 'B':
        connection.sendData(message('2'));
        return true;
      case 'D': // Describe: a statement gets its parameter list first
        connection.sendData(Buffer.concat([
          ...(data[5] === 0x53 ? [message('t', int16(0))] : []), rowDescription(execute(sql).columns),
        ]));
        return true;
      case 'E': {
        const { rows } = execute(sql);
        connection.sendData(Buffer.concat([...rows.map(dataRow), commandComplete(`SELECT ${rows.length}`)]));
        return true;
      }
      case 'C':
        connection.sendData(message('3'));
        return true;
      case 'S':
        connection.sendData(readyForQuery());
        return true;
      case 'H':
        return true;
      default:
        return false; // Terminate and anything else: the built-ins answer
    }
  };
}

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '5433' }, host: { type: 'string', default: '127.0.0.1' } },
});

const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  let handle;
  const connection = new PostgresConnection(socket, {
    serverVersion: '16.3 (fixed-result example)',
    authMode: 'none',
    onMessage(data, { isAuthenticated }) {
      if (!isAuthenticated) return false;
      handle ??= createHandler(connection);
      return handle(data);
    },
  });
});

server.listen(Number(args.port), args.host, () => {
  const { address, port } = server.address();
  console.log(`fixed-result server listening on ${address}:${port}`);
});

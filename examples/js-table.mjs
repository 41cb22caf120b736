#!/usr/bin/env node
// An in-memory JS array served as a table to every Postgres client, with the WHERE filter
// pushed down from a parameter:
//   node examples/js-table.mjs [--port 5434] [--host 127.0.0.1]
//   psql -h 127.0.0.1 -p 5434 -U me -c 'select * from people where age > 30'
import { parseArgs } from 'node:util';
import { createServer } from 'pg-gateway-native';

const people = [
  { id: 1, name: 'Ada', age: 36, joined: new Date('2021-03-04T10:00:00Z') },
  { id: 2, name: 'Grace', age: 45, joined: new Date('2019-07-01T08:30:00Z') },
  { id: 3, name: 'Linus', age: 28, joined: new Date('2023-01-15T16:45:00Z') },
];
const fields = [
  { name: 'id', type: 'int4' }, { name: 'name', type: 'text' }, { name: 'age', type: 'int4' }, { name: 'joined', type: 'timestamptz' },
];
const QUERY = /^select \* from people(?: where age > (\$1|\d+))?\s*;?$/i;

const server = createServer({
  authMode: 'none',
  onQuery({ sql, params }) {
    const match = QUERY.exec(sql.trim());
    if (!match) throw { code: '42601', message: 'only "select * from people [where age > n]" is served here' };
    const min = match[1] === undefined ? -Infinity : Number(match[1] === '$1' ? params[0] : match[1]);
    return { fields, rows: people.filter((person) => person.age > min) };
  },
  // What a prepared statement takes and returns, for clients that ask before running it.
  onDescribe: ({ sql }) => (QUERY.test(sql.trim()) ? { paramTypes: ['int4'], fields } : {}),
});

const { values: args } = parseArgs({ options: { port: { type: 'string', default: '5434' }, host: { type: 'string', default: '127.0.0.1' } } });
const { address, port } = await server.listen({ port: Number(args.port), host: args.host });
console.log(`js-table server listening on ${address}:${port}`);
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));

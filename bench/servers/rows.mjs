// Benchmark server: one large result, 1,000,000 rows x 5 columns (int4, int8, text, float8,
// timestamptz), text format, for a client that only counts bytes. `select rows` serves rows
// already in memory (one array per row, made at start: the cost measured is the gateway's);
// `select generated` makes them in a generator as they go (a data source's cost included).
//   node rows.mjs <module> <port> [listener]
// With pg-gateway 0.2.4 the rows are encoded in JS by `onMessage`, as well as a 0.2.4 user can
// (one buffer per 1024 rows, writes that wait for 'drain'): 0.2.4 never calls onQuery. With
// pg-gateway-native they come from `onQuery` and are encoded in Rust.
//   ROWS=n changes the row count.
import net from 'node:net';
import { once } from 'node:events';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [modulePath, port, entry] = process.argv.slice(2);
const gateway = require(modulePath);
const ROWS = Number(process.env.ROWS ?? 1_000_000);
const BASE = Date.UTC(2024, 0, 1);
const FIELDS = [
  { name: 'a', type: 'int4' },
  { name: 'b', type: 'int8' },
  { name: 'c', type: 'text' },
  { name: 'd', type: 'float8' },
  { name: 'e', type: 'timestamptz' },
];
const row = (i) => [i, i * 1000, `name ${i}`, i / 3, new Date(BASE + i * 1000)];
const TABLE = Array.from({ length: ROWS }, (_, i) => row(i));
function* generated() {
  for (let i = 0; i < ROWS; i++) yield row(i);
}
const rowsFor = (sql) => (sql.includes('generated') ? generated() : TABLE);

// ---- pg-gateway 0.2.4: the encoder its users write ----
function message(type, body) {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}
const OIDS = { int4: 23, int8: 20, text: 25, float8: 701, timestamptz: 1184 };
const DESCRIPTION = (() => {
  const parts = [Buffer.from([0, FIELDS.length])];
  for (const { name, type } of FIELDS) {
    const column = Buffer.alloc(18);
    column.writeInt32BE(0, 0);
    column.writeInt16BE(0, 4);
    column.writeInt32BE(OIDS[type], 6);
    column.writeInt16BE(type === 'text' ? -1 : 8, 10);
    column.writeInt32BE(-1, 12);
    column.writeInt16BE(0, 16);
    parts.push(Buffer.from(`${name}\0`), column);
  }
  return message('T', Buffer.concat(parts));
})();
const two = (n) => (n < 10 ? `0${n}` : `${n}`);
function timestamptz(d) {
  const ms = d.getUTCMilliseconds();
  const fraction = ms ? `.${String(ms).padStart(3, '0').replace(/0+$/, '')}` : '';
  return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}${fraction}+00`;
}

async function sendRowsInJs(socket, rows) {
  socket.write(DESCRIPTION);
  let buffer = Buffer.allocUnsafe(1 << 16);
  let at = 0;
  let count = 0;
  const values = new Array(5);
  for (const row of rows) {
    values[0] = String(row[0]);
    values[1] = String(row[1]);
    values[2] = row[2];
    values[3] = String(row[3]);
    values[4] = timestamptz(row[4]);
    let length = 6;
    for (const value of values) length += 4 + Buffer.byteLength(value);
    if (at + length + 1 > buffer.length) {
      if (!socket.write(buffer.subarray(0, at))) await once(socket, 'drain');
      buffer = Buffer.allocUnsafe(Math.max(1 << 16, length + 1));
      at = 0;
    }
    buffer[at] = 0x44;
    buffer.writeInt32BE(length, at + 1);
    buffer.writeInt16BE(5, at + 5);
    at += 7;
    for (const value of values) {
      const n = buffer.write(value, at + 4);
      buffer.writeInt32BE(n, at);
      at += 4 + n;
    }
    count += 1;
  }
  socket.write(buffer.subarray(0, at));
  socket.write(Buffer.concat([message('C', Buffer.from(`SELECT ${count}\0`)), message('Z', Buffer.from('I'))]));
}

function theirs(getConnection) {
  return {
    authMode: 'none',
    // 0.2.4 passes no connection to its hooks: the closure finds it.
    async onMessage(data, state) {
      if (!state.isAuthenticated || data[0] !== 0x51) return false;
      await sendRowsInJs(getConnection().socket, rowsFor(data.toString('utf8', 5, data.length - 1)));
      return true;
    },
  };
}

// ---- pg-gateway-native: onQuery ----
function ours() {
  return { authMode: 'none', onQuery: ({ sql }) => ({ fields: FIELDS, rows: rowsFor(sql) }) };
}

// pg-gateway 0.2.4 has no createServer (nor onQuery).
const options = typeof gateway.createServer === 'function' ? ours : theirs;
if (entry === 'listener') {
  await gateway.createServer(options()).listen({ port: Number(port), host: '127.0.0.1' });
  console.log('ready');
} else {
  net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const connection = new gateway.PostgresConnection(socket, options(() => connection));
  }).listen(Number(port), '127.0.0.1', () => console.log('ready'));
}

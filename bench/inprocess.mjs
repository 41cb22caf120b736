// The js driver's own cost per statement, without the kernel or a client: a Duplex stands in
// for the socket (a measuring tool, not a test: tests use real sockets) and is fed pgbench's
// bytes for `SELECT 1`, 9 rounds of `count` statements; prints server CPU per statement.
//
//   node bench/inprocess.mjs <server> [simple|extended] [count]
//     server: onMessage  hand-built bytes (as bench/servers/fixed.mjs)
//             onQuery    a constant { fields, rows } (as bench/servers/query.mjs)
//             fresh      onQuery building its fields and rows per statement
//
// With `valgrind --tool=callgrind node bench/inprocess.mjs onQuery simple 6000`, the inclusive
// counts of `pg_gateway_native::napi::raw::*` divided by 54 000 are the native instructions per
// statement (deterministic, unlike time on a shared VM).
import { Duplex } from 'node:stream';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const gateway = require('../index.js');
const [server = 'onQuery', protocol = 'simple', countArg = '200000'] = process.argv.slice(2);
const COUNT = Number(countArg);
const ROUNDS = 9;

function message(type, body) {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}
const int16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const ROW = message('D', Buffer.concat([int16(1), int32(1), Buffer.from('1')]));
const DESCRIPTION = message('T', Buffer.concat([int16(1), Buffer.from('?column?\0'), int32(0), int16(0), int32(23), int16(4), int32(-1), int16(0)]));
const COMPLETE = message('C', Buffer.from('SELECT 1\0'));
const READY = message('Z', Buffer.from('I'));
const REPLIES = {
  Q: Buffer.concat([DESCRIPTION, ROW, COMPLETE, READY]),
  P: message('1', Buffer.alloc(0)),
  B: message('2', Buffer.alloc(0)),
  D: DESCRIPTION,
  E: Buffer.concat([ROW, COMPLETE]),
  S: READY,
};
const RESULT = { fields: [{ name: '?column?', type: 'int4' }], rows: [[1]] };

const servers = {
  onMessage: {
    onMessage(data, state, connection) {
      if (!state.isAuthenticated) return false;
      const reply = REPLIES[String.fromCharCode(data[0])];
      if (reply) connection.sendData(reply);
      return reply !== undefined;
    },
  },
  onQuery: { onQuery: () => RESULT },
  fresh: { onQuery: () => ({ fields: [{ name: '?column?', type: 'int4' }], rows: [[1]] }) },
};
if (!servers[server] || !['simple', 'extended'].includes(protocol) || !(COUNT > 0)) {
  console.error('usage: node bench/inprocess.mjs <onMessage|onQuery|fresh> [simple|extended] [count]');
  process.exit(2);
}

let written = 0;
const socket = new Duplex({ read() {}, write(chunk, encoding, callback) { written += chunk.length; callback(); } });
new gateway.PostgresConnection(socket, { authMode: 'none', ...servers[server] });
const startupBody = Buffer.concat([int32(196608), Buffer.from('user\0bench\0database\0bench\0\0')]);
socket.push(Buffer.concat([int32(startupBody.length + 4), startupBody]));
await new Promise((resolve) => setTimeout(resolve, 50));

const statement = protocol === 'extended'
  ? Buffer.concat([
    message('P', Buffer.from('\0SELECT 1\0\0\0')),
    message('B', Buffer.from('\0\0\0\0\0\0\0\0')),
    message('D', Buffer.from('P\0')),
    message('E', Buffer.from('\0\0\0\0\0')),
    message('S', Buffer.alloc(0)),
  ])
  : message('Q', Buffer.from('SELECT 1;\0'));

const before = written;
const cpu = [];
for (let round = 0; round < ROUNDS; round++) {
  const start = process.cpuUsage();
  // A push to a flowing stream emits 'data' at once: the driver answers before the next.
  for (let i = 0; i < COUNT; i++) socket.push(statement);
  const used = process.cpuUsage(start);
  cpu.push(((used.user + used.system) * 1000) / COUNT);
}
cpu.sort((a, b) => a - b);
const bytes = (written - before) / (ROUNDS * COUNT);
console.log(`${server}, ${protocol}: ${bytes.toFixed(0)} bytes answered per statement; CPU per statement: min ${cpu[0].toFixed(0)} ns, median ${cpu[ROUNDS >> 1].toFixed(0)} ns`);
process.exit(bytes > 0 ? 0 : 1);

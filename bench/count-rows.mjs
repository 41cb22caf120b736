// A client that only counts bytes: connects without a password, sends one simple Query and
// reads to its ReadyForQuery, keeping nothing. Prints `<seconds> <bytes> <rows>` as JSON.
//   node count-rows.mjs <port> [sql]
import net from 'node:net';
import { once } from 'node:events';

const [port, sql = 'select rows'] = process.argv.slice(2);
const socket = net.connect(Number(port), '127.0.0.1');
await once(socket, 'connect');
const startup = Buffer.from('\0\0\0\0\0\x03\0\0user\0bench\0database\0bench\0\0', 'latin1');
startup.writeInt32BE(startup.length);
const query = Buffer.concat([Buffer.from('Q\0\0\0\0'), Buffer.from(`${sql}\0`)]);
query.writeInt32BE(query.length - 1, 1);

// Walks message headers across chunks: type byte, then a length, then a skipped body.
let header = Buffer.alloc(0);
let skip = 0;
let ready = 0;
let rows = 0;
let bytes = 0;
let started = 0n;
let finish;
const done = new Promise((resolve) => { finish = resolve; });
socket.on('data', (chunk) => {
  bytes += chunk.length;
  let i = 0;
  while (i < chunk.length) {
    if (skip > 0) {
      const n = Math.min(skip, chunk.length - i);
      skip -= n;
      i += n;
      continue;
    }
    const take = chunk.subarray(i, i + 5 - header.length);
    header = header.length ? Buffer.concat([header, take]) : take;
    i += take.length;
    if (header.length < 5) break;
    if (header[0] === 0x44) rows += 1;
    if (header[0] === 0x45) {
      console.error('server error');
      process.exit(1);
    }
    skip = header.readInt32BE(1) - 4;
    if (header[0] === 0x5a && ++ready === 1) {
      bytes = 0;
      started = process.hrtime.bigint();
      socket.write(query);
    } else if (header[0] === 0x5a) {
      finish();
    }
    header = Buffer.alloc(0);
  }
});
socket.write(startup);
await done;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ seconds, bytes, rows }));
socket.destroy();

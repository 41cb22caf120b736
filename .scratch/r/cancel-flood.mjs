// Cancel floods against the server in $PORTFILE (AUTH=none expected).
// MODE=wrong (random keys) | right (the key of one live session) | stale (keys of sessions that just closed)
// N cancels, CONC at a time. Each cancel: connect, write 16 bytes, wait for close (bounded).
import net from 'node:net';
import { readFileSync } from 'node:fs';
import crypto from 'node:crypto';
import { startup, cancelPacket, parse, sleep } from './lib.mjs';
const port = Number(readFileSync(process.env.PORTFILE ?? '/work/main/.scratch/r/srvport.txt', 'utf8'));
const N = Number(process.env.N ?? 2000), CONC = Number(process.env.CONC ?? 50), MODE = process.env.MODE ?? 'wrong';
export async function session(port, query) {
  const s = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0); let key = null;
  const waitFor = (pred, ms = 10000) => new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error('timeout; got ' + parse(buf).map((m) => m.type).join(''))), ms);
    const check = () => { const msgs = parse(buf); if (pred(msgs)) { clearTimeout(t); s.off('data', on); res(msgs); } };
    const on = (d) => { buf = Buffer.concat([buf, d]); check(); };
    s.on('data', on); check();
  });
  s.on('error', () => {});
  await new Promise((r, j) => { s.once('connect', r); s.once('error', j); });
  s.write(startup({ user: 'u', database: 'd' }));
  const msgs = await waitFor((m) => m.some((x) => x.type === 'Z' || x.type === 'E'));
  const k = msgs.find((m) => m.type === 'K');
  if (k) key = { pid: k.body.readInt32BE(0), secret: k.body.subarray(4, 8) };
  return { s, key, msgs, waitFor };
}
function cancel(pid, secret, ms = 5000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1'); let got = 0; const t0 = Date.now();
    const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, ms);
    s.on('connect', () => s.write(cancelPacket(pid, secret)));
    s.on('data', (d) => { got += d.length; });
    s.on('error', (e) => {});
    s.on('close', () => { clearTimeout(t); resolve(got ? `reply${got}` : 'closed'); });
  });
}
const tally = {}; const t0 = Date.now();
let live = null; const stale = [];
if (MODE === 'right') live = await session(port);
if (MODE === 'stale') {
  for (let i = 0; i < Math.min(N, 200); i++) { const x = await session(port); stale.push(x.key); x.s.destroy(); }
}
let next = 0;
await Promise.all(Array.from({ length: CONC }, async () => {
  while (next < N) {
    const i = next++;
    let r;
    if (MODE === 'wrong') r = await cancel(crypto.randomInt(1, 2 ** 31 - 1), crypto.randomBytes(4));
    else if (MODE === 'right') r = await cancel(live.key.pid, live.key.secret);
    else if (MODE === 'wrongkey') r = await cancel(Number(process.env.PID), crypto.randomBytes(4));
    else { const k = stale[i % stale.length]; r = await cancel(k.pid, k.secret); }
    tally[r] = (tally[r] ?? 0) + 1;
  }
}));
console.log(JSON.stringify({ MODE, N, ms: Date.now() - t0, tally, liveKey: live?.key?.pid }));
if (live) {
  // is the live session still usable?
  live.s.write(Buffer.from([0x51, 0, 0, 0, 13, ...Buffer.from('select 1\0')]));
  try { const m = await live.waitFor((m) => m.some((x) => x.type === 'Z')); console.log('live session after flood:', m.map((x) => x.type).join('')); } catch (e) { console.log('live session after flood:', e.message); }
  live.s.destroy();
}

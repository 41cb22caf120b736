// shared helpers for scratch scripts
export function message(type, ...parts) {
  const body = Buffer.concat(parts);
  const h = Buffer.alloc(5); h[0] = type.charCodeAt(0); h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const i16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cs = (s) => Buffer.from(`${s}\0`);
export function result(text) {
  return Buffer.concat([
    message('T', i16(1), cs('r'), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0)),
    message('D', i16(1), i32(Buffer.byteLength(text)), Buffer.from(text)),
    message('C', cs('SELECT 1')), message('Z', Buffer.from('I')),
  ]);
}
export function startup(params) {
  const body = [i32(196608)];
  for (const [k, v] of Object.entries(params)) body.push(Buffer.from(`${k}\0${v}\0`));
  body.push(Buffer.from([0]));
  const p = Buffer.concat(body); return Buffer.concat([i32(p.length + 4), p]);
}
export function cancelPacket(pid, key) {
  const b = Buffer.alloc(16); b.writeInt32BE(16, 0); b.writeInt32BE(80877102, 4); b.writeInt32BE(pid, 8);
  Buffer.from(key).copy(b, 12); return b;
}
/** parse backend messages from a buffer */
export function parse(buf) {
  const out = []; let i = 0;
  while (i + 5 <= buf.length) { const len = buf.readInt32BE(i + 1); if (i + 1 + len > buf.length) break;
    out.push({ type: String.fromCharCode(buf[i]), body: buf.subarray(i + 5, i + 1 + len) }); i += 1 + len; }
  return out;
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export function rss() { global.gc?.(); const m = process.memoryUsage(); return { rssMB: +(m.rss / 1048576).toFixed(1), heapMB: +(m.heapUsed / 1048576).toFixed(1), ext: +(m.external/1048576).toFixed(1) }; }

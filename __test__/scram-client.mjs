// A SCRAM-SHA-256 client for tests, written from RFC 5802 / RFC 7677 with node:crypto, that can
// be told to misbehave at each step. It answers what a server said: the first ErrorResponse's
// fields, or `ok` once AuthenticationOk arrives, with the server's messages in order.
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';

const int32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };

function startupMessage(parameters) {
  const body = [int32(196608)];
  for (const [k, v] of Object.entries(parameters)) body.push(Buffer.from(`${k}\0${v}\0`));
  body.push(Buffer.from([0]));
  const payload = Buffer.concat(body);
  return Buffer.concat([int32(payload.length + 4), payload]);
}

export function typed(type, body) {
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
}

/** SASLInitialResponse: mechanism, then the length-prefixed data (`length` overrides it). */
export function saslInitial(mechanism, data, length = data === null ? -1 : data.length) {
  return typed('p', Buffer.concat([Buffer.from(`${mechanism}\0`), int32(length), data ?? Buffer.alloc(0)]));
}

function errorFields(body) {
  const fields = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const end = body.indexOf(0, i + 1);
    fields[String.fromCharCode(body[i])] = body.subarray(i + 1, end).toString();
    i = end + 1;
  }
  return { code: fields.C, message: fields.M, detail: fields.D, severity: fields.V ?? fields.S };
}

/** Reads whole backend messages from a socket. */
function messageReader(socket) {
  let buffered = Buffer.alloc(0);
  let ended = false;
  let wake = null;
  socket.on('data', (d) => { buffered = Buffer.concat([buffered, d]); wake?.(); });
  const onEnd = () => { ended = true; wake?.(); };
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  socket.on('error', onEnd);
  return async function next(timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (buffered.length >= 5) {
        const len = buffered.readInt32BE(1);
        if (buffered.length >= len + 1) {
          const message = { type: String.fromCharCode(buffered[0]), body: buffered.subarray(5, len + 1) };
          buffered = buffered.subarray(len + 1);
          return message;
        }
      }
      if (ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the server');
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => { clearTimeout(timer); wake = null; resolve(); };
      });
    }
  };
}

const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const sha256 = (data) => crypto.createHash('sha256').update(data).digest();

/**
 * Runs one SCRAM exchange. Options: `tls` ({ ca, servername }) to start with SSLRequest;
 * `mechanism` (default: -PLUS when offered and `plus` is true, else SCRAM-SHA-256);
 * `gs2` header (default by mechanism); `nonce`; `initial(clientFirst)` -> the whole
 * SASLInitialResponse message; `final(parts)` -> the client-final-message text, where `parts`
 * holds `{ cbind, nonce, proof(withoutProof) }`; `afterFirst` -> raw bytes sent instead of the
 * final message.
 */
export async function scramExchange(port, {
  user = 'scram_user', password = 'secret', tls: tlsOptions, plus = true, mechanism, gs2, nonce,
  initial, final, afterFirst, timeoutMs = 10000,
} = {}) {
  let socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let certificate = null;
  if (tlsOptions) {
    socket.write(Buffer.concat([int32(8), int32(80877103)]));
    const [answer] = await once(socket, 'data');
    if (answer.toString() !== 'S') throw new Error(`SSLRequest answered ${answer.toString('hex')}`);
    socket = tls.connect({ socket, ALPNProtocols: ['postgresql'], ...tlsOptions });
    await once(socket, 'secureConnect');
    certificate = socket.getPeerCertificate().raw;
  }
  const next = messageReader(socket);
  const messages = [];
  const result = (outcome) => { socket.destroy(); return { ...outcome, messages }; };
  const read = async () => {
    const message = await next(timeoutMs);
    if (message) messages.push(message.type);
    return message;
  };
  try {
    socket.write(startupMessage({ user, database: 'postgres' }));
    let message = await read();
    if (!message) return result({ outcome: 'closed' });
    if (message.type === 'E') return result({ outcome: 'error', ...errorFields(message.body) });
    if (message.type !== 'R' || message.body.readInt32BE(0) !== 10) throw new Error(`expected AuthenticationSASL, got ${message.type}`);
    const offered = message.body.subarray(4).toString().split('\0').filter(Boolean);
    const chosen = mechanism ?? (plus && offered.includes('SCRAM-SHA-256-PLUS') ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256');
    const header = gs2 ?? (chosen === 'SCRAM-SHA-256-PLUS' ? 'p=tls-server-end-point,,' : 'n,,');
    const clientNonce = nonce ?? crypto.randomBytes(18).toString('base64');
    const bare = `n=,r=${clientNonce}`;
    const clientFirst = `${header}${bare}`;
    let sentAt = process.hrtime.bigint();
    const elapsedMs = () => Number(process.hrtime.bigint() - sentAt) / 1e6;
    const timings = {};
    socket.write(initial ? initial(clientFirst) : saslInitial(chosen, Buffer.from(clientFirst)));
    message = await read();
    // An empty SASLContinue asks for an initial response the client did not send with its
    // mechanism (the `initial` option then sent it already, in a SASLResponse).
    while (message?.type === 'R' && message.body.readInt32BE(0) === 11 && message.body.length === 4) message = await read();
    timings.first = elapsedMs();
    if (!message) return result({ outcome: 'closed', offered });
    if (message.type === 'E') return result({ outcome: 'error', offered, ...errorFields(message.body) });
    if (message.type !== 'R' || message.body.readInt32BE(0) !== 11) throw new Error(`expected SASLContinue, got ${message.type}`);
    const serverFirst = message.body.subarray(4).toString();
    let expectedServerFinal = null;
    if (afterFirst) {
      socket.write(afterFirst);
    } else {
      const attrs = Object.fromEntries(serverFirst.split(',').map((a) => [a[0], a.slice(2)]));
      const salted = crypto.pbkdf2Sync(password.normalize('NFKC'), Buffer.from(attrs.s, 'base64'), Number(attrs.i), 32, 'sha256');
      const clientKey = hmac(salted, 'Client Key');
      const cbindData = header.startsWith('p=') ? sha256(certificate ?? Buffer.alloc(0)) : Buffer.alloc(0);
      const cbind = Buffer.concat([Buffer.from(header), cbindData]).toString('base64');
      const proof = (withoutProof) => {
        const signature = hmac(sha256(clientKey), `${bare},${serverFirst},${withoutProof}`);
        return Buffer.from(clientKey.map((b, i) => b ^ signature[i])).toString('base64');
      };
      const withoutProof = `c=${cbind},r=${attrs.r}`;
      const serverKey = hmac(salted, 'Server Key');
      expectedServerFinal = `v=${hmac(serverKey, `${bare},${serverFirst},${withoutProof}`).toString('base64')}`;
      const text = final
        ? final({ cbind, nonce: attrs.r, proof, serverFirst })
        : `${withoutProof},p=${proof(withoutProof)}`;
      sentAt = process.hrtime.bigint();
      socket.write(typed('p', Buffer.from(text)));
    }
    let serverVerified = false;
    for (;;) {
      message = await read();
      if (!message) return result({ outcome: 'closed', offered, serverFirst });
      timings.final ??= elapsedMs();
      if (message.type === 'E') return result({ outcome: 'error', offered, serverFirst, timings, ...errorFields(message.body) });
      if (message.type === 'R' && message.body.readInt32BE(0) === 12) {
        serverVerified = message.body.subarray(4).toString() === expectedServerFinal;
      }
      if (message.type === 'R' && message.body.readInt32BE(0) === 0) {
        return result({ outcome: 'ok', offered, serverFirst, serverVerified });
      }
    }
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

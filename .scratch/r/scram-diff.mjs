// Differential fuzz: the same hostile SCRAM exchanges against PostgreSQL 15 and the gateway
// (createServer, and js driver); compares outcome + SQLSTATE. Bounded by N cases and DEADLINE ms.
import net from 'node:net';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, PostgresConnection, createScramSha256Secret } from '/work/main/index.js';
import { scramExchange, saslInitial, typed } from '/work/main/__test__/scram-client.mjs';
const pgPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8'));
const secret = createScramSha256Secret('postgres');
const opts = { authMode: 'scramSha256', getScramSecret: ({ user }) => (user === 'postgres' ? secret : null) };
const server = createServer(opts);
const { port: gwPort } = await server.listen({ port: 0, host: '127.0.0.1' });
const js = net.createServer((s) => new PostgresConnection(s, { ...opts }));
await new Promise((r) => js.listen(0, '127.0.0.1', r));
const jsPort = js.address().port;
let seed = Number(process.env.SEED ?? 1);
const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
const pick = (a) => a[Math.floor(rnd() * a.length)];
const gs2s = ['n,,', 'y,,', 'p=tls-server-end-point,,', 'p=foo,,', 'n,a=x,', 'x,,', '', 'n,', 'n,,,', 'y,a=,', 'n,a=postgres,', 'p=,,', 'n ,,', 'N,,'];
const bares = (nonce) => [`n=,r=${nonce}`, `n=postgres,r=${nonce}`, `m=ext,n=,r=${nonce}`, 'n=,r=', `n=,r=${nonce},x=y`, `r=${nonce}`,
  `n=,r=a b`, `n=,r=\u00e9${nonce}`, `n=,r=a\x7fb`, `n=,r=${nonce},`, `n=,r=${nonce}=`, `n=x=y,r=${nonce}`, `n=,r=${nonce},e=,`, `n=,r==`, `n=,r=${'x'.repeat(1000)}`, `n,r=${nonce}`, `n=,,r=${nonce}`];
const finals = [
  (p) => `c=${p.cbind},r=${p.nonce},p=${p.proof(`c=${p.cbind},r=${p.nonce}`)}`,
  (p) => `c=biws,r=${p.nonce},p=${p.proof(`c=biws,r=${p.nonce}`)}`,
  (p) => `c=eSws,r=${p.nonce},p=${p.proof(`c=eSws,r=${p.nonce}`)}`,
  (p) => `c=${p.cbind},r=${p.nonce}x,p=${p.proof(`c=${p.cbind},r=${p.nonce}x`)}`,
  (p) => `c=${p.cbind},r=${p.nonce},x=1,p=${p.proof(`c=${p.cbind},r=${p.nonce},x=1`)}`,
  (p) => `c=${p.cbind},r=${p.nonce},p=${p.proof(`c=${p.cbind},r=${p.nonce}`)},`,
  (p) => `c=${p.cbind},r=${p.nonce},p=${p.proof(`c=${p.cbind},r=${p.nonce}`)},x=y`,
  (p) => `c=${p.cbind},r=${p.nonce},p=AAAA`,
  (p) => `c=${p.cbind},r=${p.nonce},p=!!!!`,
  (p) => `c=${p.cbind},r=${p.nonce},p=`,
  (p) => `c=${p.cbind},r=${p.nonce}`,
  (p) => `c=${p.cbind},p=${p.proof(`c=${p.cbind}`)}`,
  (p) => `r=${p.nonce},p=${p.proof(`r=${p.nonce}`)}`,
  (p) => ``,
  (p) => `c=${p.cbind},r=${p.nonce},p=${p.proof(`c=${p.cbind},r=${p.nonce}`)}\u0000`,
  (p) => `c=${p.cbind},r=${p.nonce},p=${Buffer.alloc(32).toString('base64')}`,
  (p) => `c=${p.cbind},r=${p.nonce},p=${Buffer.alloc(33).toString('base64')}`,
  (p) => `c=${p.cbind},r=${p.nonce},p=${p.proof(`c=${p.cbind},r=${p.nonce}`)}`.replace('c=', 'c=='),
  (p) => `c=${p.cbind},r=${p.nonce},p=${p.proof(`c=${p.cbind},r=${p.nonce}`).slice(0, -1)}`,
  (p) => `c=${p.cbind},r=${p.nonce},p=${p.proof(`c=${p.cbind},r=${p.nonce}`)}`.toUpperCase(),
];
const mechs = [undefined, 'SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'scram-sha-256', 'PLAIN', ''];
async function run(port, c) {
  try {
    const r = await scramExchange(port, {
      user: c.user, password: c.password, plus: false, mechanism: c.mech,
      initial: (cf) => {
        const text = c.gs2 + c.bare;
        if (c.initialKind === 0) return saslInitial(c.mech ?? 'SCRAM-SHA-256', Buffer.from(text));
        if (c.initialKind === 1) return saslInitial(c.mech ?? 'SCRAM-SHA-256', null);
        if (c.initialKind === 2) return saslInitial(c.mech ?? 'SCRAM-SHA-256', Buffer.from(text), text.length + 3);
        if (c.initialKind === 3) return saslInitial(c.mech ?? 'SCRAM-SHA-256', Buffer.from(text), -2);
        return Buffer.concat([saslInitial(c.mech ?? 'SCRAM-SHA-256', null), typed('p', Buffer.from(text))]);
      },
      final: c.finalIdx === undefined ? undefined : (p) => finals[c.finalIdx](p),
      gs2: c.gs2, nonce: c.nonce, timeoutMs: 5000,
    });
    return `${r.outcome}${r.code ? ' ' + r.code : ''}`;
  } catch (e) { return `throw ${e.message.slice(0, 60)}`; }
}
const N = Number(process.env.N ?? 200), deadline = Date.now() + Number(process.env.DEADLINE ?? 90000);
let diffs = 0, n = 0; const seen = new Map();
for (let i = 0; i < N && Date.now() < deadline; i++) {
  const nonce = crypto.randomBytes(18).toString('base64');
  const c = { user: rnd() < 0.85 ? 'postgres' : 'nobody', password: rnd() < 0.85 ? 'postgres' : 'wrong', mech: rnd() < 0.6 ? 'SCRAM-SHA-256' : pick(mechs), gs2: rnd() < 0.6 ? 'n,,' : pick(gs2s), nonce,
    bareIdx: rnd() < 0.5 ? 0 : Math.floor(rnd() * 17), initialKind: pick([0, 0, 0, 0, 0, 0, 1, 2, 3, 4]), finalIdx: pick([undefined, ...finals.keys()]) };
  c.bare = bares(nonce)[c.bareIdx];
  const [a, b, d] = await Promise.all([run(pgPort, c), run(gwPort, c), run(jsPort, c)]);
  n++;
  const key = `${a} | ${b} | ${d}`; seen.set(key, (seen.get(key) ?? 0) + 1);
  if (a !== b || b !== d) { diffs++; if (diffs <= 25) console.log('DIFF', JSON.stringify({ ...c, nonce: undefined }), '\n   pg:', a, ' gw:', b, ' js:', d); }
}
console.log('cases', n, 'diffs', diffs); for (const [k, v] of seen) console.log(v, k);
await server.close({ gracePeriod: 0 }); js.close(); console.log('connectionCount', server.connectionCount);

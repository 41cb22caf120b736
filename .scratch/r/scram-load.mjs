// client side: ROUNDS x TOTAL SCRAM logins at CONC concurrency against port in srvport.txt
import { readFileSync } from 'node:fs';
import { scramExchange } from '/work/main/__test__/scram-client.mjs';
const port = Number(readFileSync(process.env.PORTFILE ?? '/work/main/.scratch/r/srvport.txt', 'utf8'));
const dir = readFileSync('/work/main/.scratch/r/certdir.txt', 'utf8').trim();
const ca = readFileSync(`${dir}/ca-cert.pem`);
const CONC = Number(process.env.CONC ?? 100), TOTAL = Number(process.env.TOTAL ?? 1000);
let next = 0; const tally = {}; const t0 = Date.now();
await Promise.all(Array.from({ length: CONC }, async () => {
  while (next < TOTAL) {
    const i = next++;
    const user = i % 10 === 9 ? `nobody${i}` : `u${process.env.DISTINCT ? i : ''}`;
    let k;
    try { const r = await scramExchange(port, { user, password: 'pw', tls: process.env.TLS === '1' ? { ca, servername: 'localhost' } : undefined, timeoutMs: 30000 }); k = r.outcome + (r.code ?? '') + (r.serverVerified ? '+v' : ''); }
    catch (e) { k = 'throw:' + e.message.slice(0, 40); }
    tally[k] = (tally[k] ?? 0) + 1;
  }
}));
console.log(JSON.stringify({ ms: Date.now() - t0, tally }));

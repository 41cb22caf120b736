// createScramSha256Secret vs PostgreSQL's own verifiers (same salt/iterations), incl. SASLprep cases;
// then log in through the gateway with psql using verifiers copied from pg_authid.
import pg from '/work/main/node_modules/pg/lib/index.js';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, createScramSha256Secret } from '/work/main/index.js';
const pgPort = Number(readFileSync('/work/main/.scratch/r/pgport.txt', 'utf8'));
const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: 'postgres', database: 'postgres' });
await admin.connect();
const pws = { plain: 'hunter2', umlaut: 'pässwörd', softhyphen: 'pass\u00ADword', ligature: '\uFB01sh', nbsp: 'a\u00A0b', emoji: 'p🔥w', prohibited: 'a\u0007b', bidi: '\u0627\u0031', empty_like: ' ', long: 'x'.repeat(500), combining: 'e\u0301' };
const users = new Map();
for (const [name, pw] of Object.entries(pws)) {
  await admin.query(`drop role if exists "r_${name}"`);
  await admin.query(`create role "r_${name}" login password '${pw.replace(/'/g, "''")}'`);
  const { rows: [{ rolpassword }] } = await admin.query(`select rolpassword from pg_authid where rolname = $1`, [`r_${name}`]);
  const [, rest] = rolpassword.split('SCRAM-SHA-256$'); const [is] = rest.split('$'); const [iterations, salt] = is.split(':');
  const ours = createScramSha256Secret(pw, { iterations: Number(iterations), salt });
  console.log(name.padEnd(11), ours === rolpassword ? 'same verifier' : `DIFFERENT\n  pg:   ${rolpassword}\n  ours: ${ours}`);
  users.set(`r_${name}`, rolpassword);
}
await admin.end();
const server = createServer({ authMode: 'scramSha256', getScramSecret: ({ user }) => users.get(user) ?? null });
const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
for (const [name, pw] of Object.entries(pws)) {
  let res;
  try { execFileSync('psql', [`host=127.0.0.1 port=${port} user=r_${name} dbname=x sslmode=disable`, '-Atc', 'select 1'], { env: { ...process.env, PGPASSWORD: pw }, stdio: 'pipe', timeout: 5000 }); res = 'login ok'; }
  catch (e) { res = 'login FAILED: status=' + e.status + ' ' + String(e.stderr).trim().slice(0, 100) + String(e.stdout).slice(0,100); }
  let resPg;
  try { execFileSync('psql', [`host=127.0.0.1 port=${pgPort} user=r_${name} dbname=postgres sslmode=disable`, '-Atc', ''], { env: { ...process.env, PGPASSWORD: pw }, stdio: 'pipe', timeout: 5000 }); resPg = 'ok'; }
  catch (e) { resPg = 'FAILED'; }
  console.log(name.padEnd(11), 'gateway', res, '| real pg:', resPg);
}
await server.close({ gracePeriod: 0 });

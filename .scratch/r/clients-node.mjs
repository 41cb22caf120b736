import pg from '/work/main/node_modules/pg/lib/index.js';
import postgres from '/work/main/node_modules/postgres/src/index.js';
const port = Number(process.argv[2]); const tls = process.argv[3] === '1';
const ssl = tls ? { rejectUnauthorized: false } : false;
for (const pw of ['pw', 'bad']) {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'u', password: pw, database: 'x', ssl, enableChannelBinding: true });
  try { await c.connect(); console.log('pg', pw, 'ok', (await c.query({ text: 'select 1', rowMode: 'array', simple: true }).catch((e) => 'q:' + e.message)).rows ?? ''); await c.end(); } catch (e) { console.log('pg', pw, 'ERR', e.code, e.message); }
  const sql = postgres({ host: '127.0.0.1', port, user: 'u', password: pw, database: 'x', ssl: tls ? { rejectUnauthorized: false } : false, connect_timeout: 5, max: 1, fetch_types: false });
  try { console.log('postgres.js', pw, await sql.unsafe('select 1').simple().then(() => 'ok', (e) => 'ERR ' + e.code + ' ' + e.message)); } finally { await sql.end({ timeout: 1 }); }
}

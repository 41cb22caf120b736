// The ceiling of the serve benchmark: pgbench's select-only transaction (one SELECT of a
// random account by key) run in a loop against PGlite in-process, with no server at all.
//   node bench/pglite-direct.mjs <seconds>   -> prints "tps = N"
import { PGlite } from '@electric-sql/pglite';

const seconds = Number(process.argv[2] ?? 5);
const db = await PGlite.create();
await db.exec(`create table pgbench_accounts (aid int primary key, bid int, abalance int, filler char(84));
  insert into pgbench_accounts select g, 1, 0, '' from generate_series(1, 100000) g;`);
await db.exec('vacuum analyze pgbench_accounts');
const run = async (ms) => {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    const aid = 1 + Math.floor(Math.random() * 100000);
    await db.query('SELECT abalance FROM pgbench_accounts WHERE aid = $1', [aid]);
    n += 1;
  }
  return n;
};
await run(2000); // warm-up, discarded
const start = performance.now();
const count = await run(seconds * 1000);
console.log(`tps = ${(count / ((performance.now() - start) / 1000)).toFixed(1)}`);
await db.close();

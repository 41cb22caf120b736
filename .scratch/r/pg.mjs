// starts a PostgreSQL 15 for proxy tests; prints port; stops on SIGTERM or after LIFE ms
import { startPostgres } from '/work/main/__test__/postgres.mjs';
import { writeFileSync } from 'node:fs';
const pg = await startPostgres({ auth: process.env.AUTH ?? 'scram-sha-256', password: 'postgres' });
writeFileSync('/work/main/.scratch/r/pgport.txt', String(pg.port));
console.log('pg port', pg.port, pg.dir);
const stop = async () => { await pg.stop(); console.log('stopped'); process.exit(0); };
process.on('SIGTERM', stop);
setTimeout(stop, Number(process.env.LIFE ?? 3600000));

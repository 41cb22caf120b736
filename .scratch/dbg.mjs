import pg from 'pg';
import { startPostgres } from '/work/main/__test__/postgres.mjs';
import { startServer } from '/work/main/__test__/helpers.mjs';
const upstream = await startPostgres();
try {
  for (const mode of ['native', 'js']) {
    const server = await startServer(mode, () => ({
      authMode: 'none',
      onStartup(state, connection) { connection.proxy({ host: '127.0.0.1', port: upstream.port, startup: true }); return true; },
    }));
    const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: upstream.password, database: 'postgres' });
    try { await client.connect(); console.log(mode, 'connected', client.processID, (await client.query('select pg_backend_pid() as p')).rows[0]); await client.end(); }
    catch (e) { console.log(mode, 'error', e.message); }
    await server.close();
  }
} finally { await upstream.stop(); }

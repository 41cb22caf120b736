// Many clients at once: 200 concurrent connections, each authenticating with md5 and running
// queries, on both entry points. Every answer must reach the client that asked.
import test from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { MODES, gateway, oneRowResult, startServer } from './helpers.mjs';

const CONNECTIONS = 200;
const QUERIES_EACH = 5;

for (const mode of MODES) {
  test(`${mode}: ${CONNECTIONS} concurrent connections, ${QUERIES_EACH} queries each`, { timeout: 120000 }, async (t) => {
    const server = await startServer(mode, () => ({
      authMode: 'md5Password',
      async validateCredentials({ user, hash, salt }) {
        return hash === await gateway.hashMd5Password(user, 'pw', salt);
      },
      onMessage(data, state, connection) {
        if (!state.isAuthenticated || data[0] !== 0x51) return false;
        // Echo the query text and the user, so a mixed-up answer would show.
        const sql = data.toString('utf8', 5, data.length - 1);
        connection.sendData(oneRowResult(['sql', 'user'], [sql, state.clientInfo.parameters.user]));
        return true;
      },
    }));
    t.after(() => server.close());
    const clients = Array.from({ length: CONNECTIONS }, (_, i) => new pg.Client({
      host: '127.0.0.1', port: server.port, user: `user${i}`, password: 'pw',
    }));
    await Promise.all(clients.map((c) => c.connect()));
    if (mode === 'native') assert.equal(server.server.connectionCount, CONNECTIONS);
    await Promise.all(clients.map(async (client, i) => {
      for (let q = 0; q < QUERIES_EACH; q++) {
        const { rows } = await client.query(`select ${i}, ${q}`);
        assert.deepEqual(rows, [{ sql: `select ${i}, ${q}`, user: `user${i}` }]);
      }
    }));
    await Promise.all(clients.map((c) => c.end()));
  });
}

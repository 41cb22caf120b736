// psql, the reference client, against both entry points and both password modes.
import test from 'node:test';
import assert from 'node:assert/strict';
import { MODES, gateway, oneRowResult, psql, startServer } from './helpers.mjs';

const PASSWORD = 'correct horse';

function options(authMode) {
  return () => ({
    authMode,
    serverVersion: '16.3 (psql tests)',
    async validateCredentials(credentials) {
      if (credentials.authMode === 'cleartextPassword') return credentials.password === PASSWORD;
      return credentials.hash === await gateway.hashMd5Password(credentials.user, PASSWORD, credentials.salt);
    },
    onMessage(data, state, connection) {
      if (!state.isAuthenticated || data[0] !== 0x51) return false;
      connection.sendData(oneRowResult(['user', 'mode'], [state.clientInfo.parameters.user, authMode]));
      return true;
    },
  });
}

for (const mode of MODES) {
  for (const authMode of ['cleartextPassword', 'md5Password']) {
    test(`${mode}: psql -c with ${authMode}, right and wrong password`, async (t) => {
      const server = await startServer(mode, options(authMode));
      t.after(() => server.close());
      const ok = await psql(server.port, ['-Atc', 'select current_user'], { user: 'alice', password: PASSWORD });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout.trim(), `alice|${authMode}`);
      const wrong = await psql(server.port, ['-c', 'select 1'], { user: 'alice', password: 'wrong' });
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /FATAL: {2}password authentication failed for user "alice"/);
      const banner = await psql(server.port, ['-c', 'select 1'], { user: 'alice', password: PASSWORD, env: { PGOPTIONS: '' } });
      assert.equal(banner.code, 0, banner.stderr);
    });
  }
}

#!/usr/bin/env node
// md5 password authentication with a user table, on the native listener. Every other query
// gets the built-in "not implemented" answer; the point here is who gets in.
//
//   node examples/md5-auth.mjs [--port 5434]
//   PGPASSWORD=secret psql -h 127.0.0.1 -p 5434 -U alice -c 'select 1'

import { parseArgs } from 'node:util';
import { createServer, hashMd5Password } from 'pg-gateway-native';

/** Who may log in. In a real server, store md5(password + user) rather than passwords. */
const users = new Map([
  ['alice', 'secret'],
  ['bob', 'hunter2'],
]);

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '5434' }, host: { type: 'string', default: '127.0.0.1' } },
});

const server = createServer({
  authMode: 'md5Password',
  async validateCredentials(credentials) {
    if (credentials.authMode !== 'md5Password') return false;
    const password = users.get(credentials.user);
    if (password === undefined) return false;
    return credentials.hash === (await hashMd5Password(credentials.user, password, credentials.salt));
  },
  onAuthenticated(state) {
    console.log(`authenticated: ${state.clientInfo.parameters.user}`);
  },
});

const { address, port } = await server.listen({ port: Number(args.port), host: args.host });
console.log(`md5-auth server listening on ${address}:${port}`);
process.on('SIGINT', () => server.close().then(() => process.exit(0)));

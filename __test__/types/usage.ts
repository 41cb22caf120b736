// Compiled with `tsc --noEmit` by types.test.mjs. Correct use must compile; each
// `@ts-expect-error` line is misuse the typings must reject (an unused directive fails).
import net from 'node:net';
import {
  PostgresConnection, createServer, hashMd5Password, createStartupMessage, FrontendMessageCode,
  type Credentials, type State, type BackendError,
} from 'pg-gateway-native';

net.createServer({ pauseOnConnect: true }, (socket) => {
  const connection = new PostgresConnection(socket, {
    serverVersion: '16.3',
    authMode: 'md5Password',
    async validateCredentials(credentials: Credentials, state: State) {
      if (credentials.authMode === 'md5Password') {
        const expected = await hashMd5Password(credentials.user, 'pw', credentials.salt);
        return credentials.hash === expected;
      }
      // @ts-expect-error: `hash` exists only on md5 credentials
      credentials.hash;
      return credentials.password === 'pw' && state.hasStarted;
    },
    onMessage(data, { isAuthenticated }) {
      if (!isAuthenticated) return false;
      connection.sendData(data);
      return data[0] === FrontendMessageCode.Query;
    },
  });
  connection.sendReadyForQuery('transaction');
  // @ts-expect-error: not a transaction status
  connection.sendReadyForQuery('busy');
  const err: BackendError = { severity: 'ERROR', code: '22012', message: 'division by zero', hint: 'no' };
  connection.sendError(err);
  // @ts-expect-error: severity must be ERROR, FATAL or PANIC
  connection.sendError({ severity: 'OOPS', code: 'XX000', message: 'x' });
  const detached = connection.detach();
  detached.pipe(net.connect(5432));
  console.log(connection.state.clientInfo?.parameters.user);
});

// @ts-expect-error: not an auth mode
createServer({ authMode: 'scram' });
// @ts-expect-error: onStartup must return a boolean (or a promise of one) or nothing
createServer({ onStartup: () => 'yes' });

const server = createServer({ authMode: 'none', serverParameters: { TimeZone: 'UTC' }, authTimeout: 5000 });
server.listen({ port: 0, host: '127.0.0.1' }).then(({ port }) => port.toFixed());
server.listen(0, '127.0.0.1', () => {});
server.listen(5432, () => {});
// @ts-expect-error: the host comes after the port
server.listen('127.0.0.1', 5432);
// @ts-expect-error: serverParameters values are strings
createServer({ serverParameters: { TimeZone: 5 } });
createServer({ writeTimeout: 0 });
createServer({ logger: console, logLevel: 'debug', stats: false });
createServer({ logger: (entry) => entry.msg.length + (entry.durationMs ?? 0) + (entry.code?.length ?? 0) });
// @ts-expect-error: not a log level
createServer({ logger: console, logLevel: 'verbose' });
// @ts-expect-error: a logger has debug, info, warn and error
createServer({ logger: { info() {} } });
server.close({ gracePeriod: 1000 });
server.close();
// @ts-expect-error: the grace period is in milliseconds, a number
server.close({ gracePeriod: '1s' });
createStartupMessage({ majorVersion: 3, minorVersion: 0, parameters: { user: 'u' } });

createServer({
  tls: async ({ sniServerName }) => ({ key: Buffer.from(''), cert: Buffer.from(sniServerName ?? '') }),
  onTlsUpgrade({ tlsInfo }, connection) {
    const name: string | undefined = tlsInfo?.sniServerName;
    const der: Uint8Array | undefined = tlsInfo?.clientCertificate;
    connection.proxy({ host: '127.0.0.1', port: 5433 });
    connection.proxy({ port: 5433, connectTimeout: 2000, startup: true });
    // @ts-expect-error: proxy needs a port
    connection.proxy({ host: '127.0.0.1' });
    void name;
    void der;
  },
});
// @ts-expect-error: tls options need a key and a cert
createServer({ tls: { cert: Buffer.from('') } });

// SCRAM: every documented secret form compiles; anything else does not.
import { createScramSha256Secret, type ScramSecret } from 'pg-gateway-native';
const verifier = createScramSha256Secret('pw', { iterations: 4096, salt: new Uint8Array(16) });
const secrets: ScramSecret[] = [
  verifier,
  { password: 'pw' },
  { iterations: 4096, salt: 'c2FsdA==', storedKey: new Uint8Array(32), serverKey: 'AAAA' },
  null,
  undefined,
];
createServer({
  authMode: 'scramSha256',
  getScramSecret: ({ user }) => (user === 'alice' ? verifier : null),
  onCancel(state, connection) {
    console.log(state.clientInfo?.parameters.user, connection.state.isAuthenticated);
  },
});
createServer({ authMode: 'scramSha256', getScramSecret: async () => ({ password: 'pw' }) });
// @ts-expect-error: a secret is a verifier, its parts, { password } or null, not a boolean
createServer({ authMode: 'scramSha256', getScramSecret: () => true });
// @ts-expect-error: a password must be wrapped as { password }, not a bare number
createServer({ authMode: 'scramSha256', getScramSecret: () => ({ password: 42 }) });
// @ts-expect-error: iterations is a number
createScramSha256Secret('pw', { iterations: '4096' });
console.log(secrets.length);

// onQuery: structured results, and shapes that are not results are compile errors.
createServer({
  authMode: 'none',
  onQuery(query, state) {
    const mode: 'idle' | 'transaction' | 'error' = state.transactionStatus;
    void mode;
    const id: unknown = query.params[0];
    void id;
    query.signal.addEventListener('abort', () => {});
    if (query.sql === 'begin') return undefined;
    if (query.sql.startsWith('insert')) return { command: 'INSERT', rowCount: 1 };
    if (query.statements.length > 1) return [{ command: 'SET' }, undefined];
    return { fields: [{ name: 'id', type: 'int4' }, { name: 'tags', type: 'text[]' }, { name: 'at', type: 1184 }], rows: [[1, ['a'], new Date()]] };
  },
  async onDescribe({ sql }) {
    return sql ? { paramTypes: ['int4'], fields: [{ name: 'id', type: 'int8' }] } : undefined;
  },
});
createServer({
  // @ts-expect-error: onQuery returns a result (or a promise of one), not an async generator
  async *onQuery() {
    yield 1;
  },
});
createServer({
  // @ts-expect-error: a result needs fields (rows alone say nothing of their types)
  onQuery: () => ({ rows: [[1]] }),
});
createServer({
  // @ts-expect-error: not a PostgreSQL type name
  onQuery: () => ({ fields: [{ name: 'n', type: 'integer64' }], rows: [] }),
});
createServer({
  // @ts-expect-error: the 0.2.4 declaration returned bytes; results are structured
  onQuery: () => new Uint8Array([1, 2]),
});
createServer({
  // @ts-expect-error: rows are arrays or objects of values (or iterables of them), not a number
  onQuery: () => ({ fields: [{ name: 'n', type: 'int4' }], rows: 5 }),
});

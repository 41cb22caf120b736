// The ESM entry's types (index.d.mts), compiled by types.test.mjs with usage.ts: named imports,
// the default import, and types from the same specifier.
import gateway, { createServer, PostgresConnection, type PostgresConnectionOptions, type State } from 'pg-gateway-native';

const options: PostgresConnectionOptions = { authMode: 'none', onStartup: (state: State) => state.hasStarted };
const server = createServer(options);
server.listen(0).then(({ port }) => port.toFixed());
gateway.createServer({ authMode: 'none' }).close();
export const Connection: typeof PostgresConnection = gateway.PostgresConnection;
// @ts-expect-error: not an export
import { createPool } from 'pg-gateway-native';
void createPool;

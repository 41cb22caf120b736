// Names the README's snippets use without defining them: what surrounds a snippet in a real
// program (the socket of a net.Server callback, the reader's own engine or routes). See
// readme-snippets.test.mjs.
import type { Socket } from 'node:net';
import type * as gateway from 'pg-gateway-native';

declare global {
  const socket: Socket;
  const connection: gateway.PostgresConnection;
  const PostgresConnection: typeof gateway.PostgresConnection;
  const createServer: typeof gateway.createServer;
  const net: typeof import('node:net');
  const connect: typeof import('node:net').connect;
  const readFileSync: typeof import('node:fs').readFileSync;
  const tls: gateway.TlsOptions;
  const key: Buffer;
  const cert: Buffer;
  const upstreamHost: string;
  const upstreamPort: number;
  const routes: Record<string, { host: string; port: number }>;
  const engine: { handle(data: Uint8Array): Promise<Uint8Array> };
  function certificatesFor(serverName: string | undefined): Promise<gateway.TlsOptions>;
  function getServerById(id: string): Promise<{ host: string; port: number }>;
}

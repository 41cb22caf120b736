// Types for pg-gateway-native: pg-gateway 0.2.4's API, name for name, plus `createServer`.
/// <reference types="node" />

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { EventEmitter } from 'node:events';

/** An ErrorResponse, as pg-gateway's `BackendError` (all optional fields are strings). */
export type BackendError = {
  severity: 'ERROR' | 'FATAL' | 'PANIC';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
};

export type CleartextPasswordCredentials = {
  authMode: 'cleartextPassword';
  user: string;
  password: string;
};

export type Md5PasswordCredentials = {
  authMode: 'md5Password';
  user: string;
  /** What the client sent: `'md5' + md5hex(md5hex(password + user) + salt)`. */
  hash: string;
  salt: Uint8Array;
};

/** Narrow on `authMode` before reading mode-specific fields. */
export type Credentials = CleartextPasswordCredentials | Md5PasswordCredentials;

/** PEM Buffers (strings are accepted too). */
export type TlsOptions = {
  /** Private key; an encrypted PKCS#8 key needs `passphrase`. */
  key: Buffer | string;
  /** Certificate chain, leaf first. */
  cert: Buffer | string;
  /** CA for client certificates (`certificate` auth). */
  ca?: Buffer | string;
  passphrase?: string;
};

export type TlsInfo = {
  /** The server name the client asked for (SNI); undefined when it sent none. */
  sniServerName?: string;
  /** The negotiated ALPN protocol ('postgresql' for libpq 17 and later). */
  alpnProtocol?: string;
  /** The client's certificate (DER), when one was requested (certificate auth) and sent. */
  clientCertificate?: Uint8Array;
};

export type TlsOptionsCallback = (tlsInfo: TlsInfo) => TlsOptions | Promise<TlsOptions>;

export type ClientParameters = {
  user: string;
  [key: string]: string;
};

export type ClientInfo = {
  majorVersion: number;
  minorVersion: number;
  parameters: ClientParameters;
};

export type State = {
  hasStarted: boolean;
  isAuthenticated: boolean;
  /** `undefined` until a StartupMessage has been received. */
  clientInfo?: ClientInfo;
  /** `undefined` until a TLS upgrade has completed. */
  tlsInfo?: TlsInfo;
  /**
   * ReadyForQuery's status as `onQuery` sessions track it: 'transaction' after BEGIN or START
   * TRANSACTION, 'error' after an error inside one, 'idle' after COMMIT/ROLLBACK/END (and
   * always 'idle' without `onQuery`).
   */
  transactionStatus: 'idle' | 'transaction' | 'error';
};

/** `state` in hooks that run once the StartupMessage is in: `clientInfo` is set. */
export type StartedState = State & { hasStarted: true; clientInfo: ClientInfo };

/** `state` in `onTlsUpgrade`: `tlsInfo` is set. */
export type TlsState = State & { tlsInfo: TlsInfo };

/** A PostgreSQL type the query API encodes and decodes, by name. */
export type PgTypeName =
  | 'bool' | 'boolean' | 'int2' | 'smallint' | 'int4' | 'integer' | 'int' | 'int8' | 'bigint' | 'oid'
  | 'float4' | 'real' | 'float8' | 'double precision' | 'float' | 'numeric' | 'decimal'
  | 'text' | 'varchar' | 'character varying' | 'bpchar' | 'char' | 'character' | 'name' | 'unknown'
  | 'bytea' | 'uuid' | 'json' | 'jsonb'
  | 'date' | 'time' | 'time without time zone' | 'timestamp' | 'timestamp without time zone'
  | 'timestamptz' | 'timestamp with time zone' | 'interval';

/** A type by name (`'int4'`, `'text[]'` for a one-dimensional array) or by OID. */
export type PgType = PgTypeName | `${PgTypeName}[]` | `_${PgTypeName}` | number;

/** A result column. */
export type Field = { name: string; type: PgType };

/** An interval as node-postgres's `postgres-interval` gives it; absent parts are 0. */
export type IntervalParts = {
  years?: number; months?: number; days?: number; hours?: number; minutes?: number; seconds?: number; milliseconds?: number;
};

/**
 * A value for a result column: what each type accepts is in the README's type table (numbers,
 * bigints and numeric strings for numbers, Date or ISO text for timestamps, Buffer for bytea,
 * any JSON-able value for json, arrays for array types). `null` and `undefined` are NULL.
 */
export type CellValue =
  | null | undefined | boolean | number | bigint | string | Date | Uint8Array | IntervalParts
  | readonly CellValue[] | { readonly [key: string]: unknown };

/** A row: values in field order, or an object keyed by field name. */
export type Row = readonly CellValue[] | { readonly [field: string]: CellValue };

/** Rows: an array, or an (async) iterable of rows or of arrays of rows (batches), streamed. */
export type Rows = readonly Row[] | Iterable<Row | readonly Row[]> | AsyncIterable<Row | readonly Row[]>;

/** A result with rows. `command` (default 'SELECT') and `rowCount` (default: the rows sent) make its tag. */
export type RowsResult = { fields: readonly Field[]; rows?: Rows; command?: string; rowCount?: number };

/** A result without rows: CommandComplete `INSERT 0 1`, `UPDATE 3`, `CREATE TABLE` ... */
export type CommandResult = { command: string; rowCount?: number; fields?: never; rows?: never };

/**
 * What `onQuery` returns: a result, nothing (the statement's own command word becomes its tag:
 * `BEGIN`, `SET`), or, for a simple Query holding several statements, one per statement.
 * To fail, throw a `BackendError`-shaped object.
 */
export type QueryResult = RowsResult | CommandResult | void | undefined | null | ReadonlyArray<RowsResult | CommandResult | undefined | null>;

/** A decoded parameter: see the README's type table for what each type becomes. */
export type ParamValue = null | boolean | number | bigint | string | Date | Buffer | ParamValue[];

/** The first argument of `onQuery`. */
export type Query = {
  /** The statement (for a simple Query, the whole query string, which may hold several). */
  readonly sql: string;
  /** The top-level statements of `sql` (split outside quotes and comments). */
  readonly statements: readonly string[];
  /** Bind parameters, decoded; `null` for SQL NULL. Empty for a simple Query. */
  readonly params: readonly ParamValue[];
  /** The parameters' type OIDs (0 where the client left the type open and `onDescribe` did not fill it). */
  readonly paramTypes: readonly number[];
  /** Aborted when a CancelRequest for this connection arrives or the client goes away. */
  readonly signal: AbortSignal;
};

/** What `onDescribe` says of a prepared statement: its parameter types and result fields. */
export type Description = { paramTypes?: readonly PgType[]; fields?: readonly Field[] };

/** `scramSha256` is PostgreSQL's `scram-sha-256` (SCRAM-SHA-256-PLUS too when TLS ends here). */
export type AuthMode = 'none' | 'cleartextPassword' | 'md5Password' | 'scramSha256' | 'certificate';

/** A SCRAM-SHA-256 verifier as PostgreSQL stores it: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. */
export type ScramSha256Verifier = `SCRAM-SHA-256$${number}:${string}$${string}:${string}`;

/** The parts of a verifier: Uint8Arrays or base64 strings. */
export type ScramSha256SecretParts = {
  iterations: number;
  salt: Uint8Array | string;
  storedKey: Uint8Array | string;
  serverKey: Uint8Array | string;
};

/**
 * What `getScramSecret` returns for a user: a verifier string (e.g. read from
 * `pg_authid.rolpassword`; one that cannot be parsed fails the login with a message saying why),
 * its parts, a plaintext password, or null/undefined when there is no such user (the client then
 * fails exactly as with a wrong password).
 */
export type ScramSecret = ScramSha256Verifier | string | ScramSha256SecretParts | { password: string } | null | undefined;

export type PostgresConnectionOptions = {
  /** `server_version` reported to clients. Default `'16.3 (pg-gateway-native)'`. */
  serverVersion?: string;
  /** Default `'md5Password'` (as pg-gateway 0.2.4; without `validateCredentials` nobody gets in). */
  authMode?: AuthMode;
  /**
   * TLS: SSLRequest is answered 'S' and plaintext startups are refused. Fixed options, or a
   * callback that chooses them per server name (called once per connection, SNI known).
   */
  tls?: TlsOptions | TlsOptionsCallback;
  /**
   * Checks a password. Return true to let the client in. Without this hook, every
   * password-based login fails with 28P01.
   */
  validateCredentials?(credentials: Credentials, state: StartedState, connection: PostgresConnection): boolean | Promise<boolean>;
  /**
   * `authMode: 'scramSha256'`: the secret of `user` (validateCredentials is not called in this
   * mode). Without this hook every SCRAM login fails with 28P01.
   */
  getScramSecret?(
    client: { user: string },
    state: StartedState,
    connection: PostgresConnection,
  ): ScramSecret | Promise<ScramSecret>;
  /** After the TLS handshake, before the StartupMessage; `state.tlsInfo` is set. */
  onTlsUpgrade?(state: TlsState, connection: PostgresConnection): void | Promise<void>;
  /** After the StartupMessage, before authentication. Return true if you answered it yourself. */
  onStartup?(state: StartedState, connection: PostgresConnection): boolean | Promise<boolean>;
  /**
   * A CancelRequest with this connection's key arrived (psql Ctrl-C, pgjdbc `cancel()`, asyncpg
   * `timeout=`, ...), on any connection of any gateway in the process. `state` and `connection`
   * are this connection's. Also called for detached and proxied connections (a proxy forwards
   * the cancel to its upstream itself). Nothing is sent to the cancelling client.
   */
  onCancel?(state: State, connection: PostgresConnection): void | Promise<void>;
  /** After AuthenticationOk, the ParameterStatus set, BackendKeyData and ReadyForQuery were sent. */
  onAuthenticated?(state: StartedState, connection: PostgresConnection): void | Promise<void>;
  /**
   * Every whole client message (type byte and length included after startup), before the
   * built-in handling. Return true if you handled it. Called one message at a time, in order.
   */
  onMessage?(data: Buffer, state: State, connection: PostgresConnection): boolean | Promise<boolean>;
  /**
   * Runs a statement. With it, the gateway speaks the simple and extended query protocols
   * itself (prepared statements, portals, row limits, transaction status) and encodes results
   * in Rust. `onMessage` still sees every message first. (pg-gateway 0.2.4 declares an
   * `onQuery(query: string)` returning bytes that it never calls; this is the structured hook.)
   */
  onQuery?(query: Query, state: State, connection: PostgresConnection): QueryResult | Promise<QueryResult>;
  /**
   * Describes a prepared statement without running it, for clients that Describe a statement
   * before they bind it (asyncpg, postgres.js, pgjdbc). Without it such a statement is
   * described with its declared parameter types (text where open) and as returning no rows.
   */
  onDescribe?(
    statement: {
      sql: string;
      paramTypes: readonly number[];
      /** Aborted when a CancelRequest for this connection arrives or the client goes away. */
      readonly signal: AbortSignal;
    },
    state: State,
    connection: PostgresConnection,
  ): Description | void | Promise<Description | void>;

  // Additions of pg-gateway-native:
  /**
   * Who drives the socket of `new PostgresConnection(socket)`: 'js' (default) keeps it in
   * Node and runs the Rust session on the JS thread, so hooks cost no thread hop and
   * `connection.socket` is your socket; 'native' hands the file descriptor to Rust (tokio), and
   * `connection.socket` becomes a stand-in. `createServer()` is always native.
   */
  driver?: 'js' | 'native';
  /** ParameterStatus values sent after authentication, replacing or adding to the defaults. */
  serverParameters?: Record<string, string>;
  /**
   * Failures the client cannot report to you: a hook that threw or rejected with something the
   * client saw as `XX000` (a thrown SQLSTATE is your answer, not a failure), a TLS handshake
   * that failed, a client certificate refused. Without it, the first of each kind is printed
   * to stderr (a process warning, code `PG_GATEWAY_ERROR`). What it throws is printed once.
   */
  onError?(error: GatewayError, state: State | undefined, connection: PostgresConnection | undefined): void | Promise<void>;
  /**
   * `createServer` only: clients at once (1 to 1000000; default no limit). One more gets
   * `FATAL 53300 sorry, too many clients already` at its StartupMessage, as from PostgreSQL;
   * its CancelRequests still go through. (With your own `net.Server`, use its `maxConnections`.)
   */
  maxConnections?: number;
  /**
   * `createServer` only: false leaves out the per-connection counters of `server.stats()`
   * (bytes, hook calls and time, authentication and TLS outcomes); connections open, total and
   * refused are still counted. Default true: they cost two clock reads per hook call (see the
   * README's Counters section).
   */
  stats?: boolean;
  /**
   * Where log lines go: a function that takes a `LogEntry`, or a pino-style object
   * (`pino()`, `console`) whose `logger[level](fields, msg)` is called. Lines: `connection
   * received` (debug), `connection authorized` and `disconnection` (info), `connection failed`
   * with the FATAL error that ended it (warn; info for class 57, a shutdown's 57P01), and, without
   * `onError`, failures the client cannot report (error). Nothing is logged without a logger.
   */
  logger?: ((entry: LogEntry) => void) | Logger;
  /** The least severe level sent to `logger`. Default `'info'`. */
  logLevel?: LogLevel;
  /** Largest Query/Parse/Bind/CopyData/FunctionCall message, in bytes. Default 1 GiB - 2 (PostgreSQL's). */
  maxMessageSize?: number;
  /**
   * Milliseconds a client has to finish startup and authentication (1 to 2147483647).
   * Default 60000 (PostgreSQL's `authentication_timeout`). Not applied once a hook took the
   * startup over (`onStartup` returned true, or `onMessage` handled the startup packet).
   */
  authTimeout?: number;
  /**
   * Milliseconds a client may take none of the output held for it before the connection is
   * dropped (0 = never; at most 2147483647). Default 60000. While output is held, no further
   * message is processed, so a client that never reads costs about one answer of memory.
   */
  writeTimeout?: number;
};

/** `connection.socket`: what a pg-gateway user touches of a `net.Socket`. */
export interface ConnectionSocket extends EventEmitter {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly encrypted: boolean;
  destroyed: boolean;
  readonly bufferSize: number;
  write(data: Uint8Array | string, callback?: () => void): boolean;
  /** Sends what is queued, then closes. */
  end(callback?: () => void): this;
  /** Closes at once. */
  destroy(error?: Error): this;
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
  setTimeout(timeout: number): this;
  on(event: 'end', listener: () => void): this;
  on(event: 'close', listener: (hadError: boolean) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: string, listener: (...args: any[]) => void): this;
}

/** What `detach()` returns: the client connection as a `Duplex`, no longer parsed. */
export interface DetachedSocket extends Duplex {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  /** True after TLS termination: the stream is the decrypted conversation. */
  readonly encrypted: boolean;
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
}

export declare class PostgresConnection {
  /** Takes over a connected `node:net` socket (best with `net.createServer({ pauseOnConnect: true })`). */
  constructor(socket: Socket, options?: PostgresConnectionOptions);
  readonly options: PostgresConnectionOptions;
  /** Your socket (driver 'js'), or a stand-in for it (driver 'native', createServer). */
  readonly socket: Socket | ConnectionSocket;
  /** A fresh snapshot on every access. */
  readonly state: State;
  readonly hasStarted: boolean;
  readonly isAuthenticated: boolean;
  readonly clientInfo?: ClientInfo;
  readonly tlsInfo?: TlsInfo;
  /** Queues raw protocol bytes. Returns false if the connection is gone or backed up. */
  sendData(data: Uint8Array | ArrayBuffer | string): boolean;
  sendError(error: BackendError): boolean;
  /** Throws `Unknown transaction status '...'` for other values. */
  sendReadyForQuery(status?: 'idle' | 'transaction' | 'error'): boolean;
  sendAuthenticationOk(): boolean;
  sendParameterStatus(name: string, value: string): boolean;
  /** FATAL 28P01 `password authentication failed for user "..."`; does not close. */
  sendAuthenticationFailedError(): boolean;
  /**
   * Stops protocol processing and returns the client connection, unprocessed bytes first:
   * your socket (driver 'js', as in 0.2.4) or a Duplex over the native connection.
   */
  detach(): Socket | DetachedSocket;
  /**
   * Sends the connection to another PostgreSQL server and copies both directions: in Rust on
   * the native driver and createServer (no payload crosses into JS), with Node streams on the
   * 'js' driver. Unprocessed bytes go first; `startup: true` replays the client's
   * StartupMessage before them. Returns at once; the switch happens when the current hook
   * returns (do not wait for it inside a hook). An unreachable upstream gives the client
   * `FATAL 08006 could not connect to upstream server ...`.
   */
  proxy(target: ProxyTarget): void;
}

export type ProxyTarget = {
  /** Default '127.0.0.1'. */
  host?: string;
  port: number;
  /** Replay the client's StartupMessage upstream first (for use in `onStartup`). */
  startup?: boolean;
  /**
   * Milliseconds the upstream has to accept the connection (1 to 2147483647); then the client
   * gets `FATAL 08006 could not connect to upstream server ...: timeout expired`. Default
   * 15000 (PgBouncer's `server_connect_timeout`).
   */
  connectTimeout?: number;
};

export type CloseOptions = {
  /**
   * Milliseconds connections whose hooks still run may take to finish (0 to 2147483647,
   * default 10000). Idle connections get `FATAL 57P01` at once, the others when their hook
   * settles or at the end of the grace period, whichever comes first.
   */
  gracePeriod?: number;
};

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** A pino-style logger (`pino()`, `console`). */
export interface Logger {
  debug(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  error(fields: LogFields, msg: string): void;
}

/** A log line's fields; those that do not apply are left out. */
export type LogFields = {
  /** The process id of the connection's BackendKeyData (PostgreSQL's `%p`). */
  pid?: number;
  remoteAddress?: string;
  remotePort?: number;
  user?: string;
  database?: string;
  applicationName?: string;
  tls?: boolean;
  /** The server name the client asked for over TLS (SNI). */
  sni?: string;
  /** `connection failed`: the FATAL error's SQLSTATE and message. */
  code?: string;
  message?: string;
  /** `disconnection`: how it ended (`end`: the client left; `closed`, `error`, `timeout`, `shutdown`, `detached`). */
  reason?: 'end' | 'closed' | 'error' | 'timeout' | 'shutdown' | 'detached';
  durationMs?: number;
  bytesReceived?: number;
  bytesSent?: number;
  /** A failure (level `error`, without `onError`): see `GatewayError`. */
  kind?: GatewayError['kind'];
  hook?: string;
  err?: GatewayError;
};

/** What a function `logger` receives. */
export type LogEntry = LogFields & { level: Exclude<LogLevel, 'silent'>; msg: string };

/** What `onError` receives. */
export interface GatewayError extends Error {
  /** `hook`: a hook failed (`hook` names it, `cause` is what it threw); `tls`: a handshake failed; `certificate`: a client certificate was refused. */
  kind: 'hook' | 'tls' | 'certificate';
  hook?: string;
  cause?: unknown;
}

/** `server.stats()`. */
export type ServerStats = {
  connectionsOpen: number;
  connectionsTotal: number;
  /** Answered `FATAL 53300` (`maxConnections`). */
  connectionsRefused: number;
  bytesReceived: number;
  bytesSent: number;
  /** Hook calls made from Rust (all but those of connections served on the JS thread) and their total time. */
  hookCalls: number;
  hookTimeMs: number;
  authFailures: number;
  tlsHandshakes: number;
  tlsFailures: number;
};

export type AddressInfo = { address: string; family: string; port: number };

export type ListenOptions = {
  /** Default 5432; 0 picks a free port. */
  port?: number;
  /** An IP address (or 'localhost'). Default '127.0.0.1'. */
  host?: string;
};

/** A server whose accept loop, framing and authentication run in Rust. */
export declare class PostgresServer extends EventEmitter {
  constructor(options?: PostgresConnectionOptions);
  readonly options: PostgresConnectionOptions;
  readonly connectionCount: number;
  /** Binds and accepts; rejects with Node's error codes (`EADDRINUSE`, `EACCES`, ...). */
  listen(options?: ListenOptions, callback?: () => void): Promise<AddressInfo>;
  /** `net.Server#listen`'s form: `listen(5432)`, `listen(5432, '0.0.0.0', () => ...)`. */
  listen(port: number, host?: string, callback?: () => void): Promise<AddressInfo>;
  listen(port: number, callback: () => void): Promise<AddressInfo>;
  address(): AddressInfo | null;
  /** Counters since the server was made (see `ServerStats`). */
  stats(): ServerStats;
  /**
   * Stops accepting and ends open connections with FATAL 57P01 (see `CloseOptions`); resolves
   * when all are closed: at most `gracePeriod` plus 2 s, after which connections that still
   * cannot close (clients that read nothing) are cut.
   */
  close(options?: CloseOptions): Promise<void>;
}

export declare function createServer(options?: PostgresConnectionOptions): PostgresServer;

export declare function hashMd5Password(user: string, password: string, salt: Uint8Array): Promise<string>;
export declare function md5(value: string | Buffer): Promise<string>;
export declare function generateMd5Salt(): Uint8Array;
/**
 * A SCRAM-SHA-256 verifier for `password`, in PostgreSQL's `rolpassword` format (SASLprep
 * applied as PostgreSQL does). Default: 4096 iterations, 16 random salt bytes.
 */
export declare function createScramSha256Secret(
  password: string,
  options?: { iterations?: number; salt?: Uint8Array | string },
): ScramSha256Verifier;
export declare function createStartupMessage(clientInfo: ClientInfo): Buffer;

export declare enum FrontendMessageCode {
  Query = 81,
  Parse = 80,
  Bind = 66,
  Execute = 69,
  FunctionCall = 70,
  Flush = 72,
  Close = 67,
  Describe = 68,
  CopyFromChunk = 100,
  CopyDone = 99,
  CopyData = 100,
  CopyFail = 102,
  Password = 112,
  Sync = 83,
  Terminate = 88,
}

export declare enum BackendMessageCode {
  DataRow = 68,
  ParseComplete = 49,
  BindComplete = 50,
  CloseComplete = 51,
  CommandComplete = 67,
  ReadyForQuery = 90,
  NoData = 110,
  NotificationResponse = 65,
  AuthenticationResponse = 82,
  ParameterStatus = 83,
  BackendKeyData = 75,
  ErrorMessage = 69,
  NoticeMessage = 78,
  RowDescriptionMessage = 84,
  ParameterDescriptionMessage = 116,
  PortalSuspended = 115,
  ReplicationStart = 87,
  EmptyQuery = 73,
  CopyIn = 71,
  CopyOut = 72,
  CopyDone = 99,
  CopyData = 100,
}

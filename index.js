'use strict';
// The public JS API: pg-gateway 0.2.4's names and contracts, built on the native binding.
// Rust owns the bytes (framing, auth, the state machine); this file only calls user hooks,
// converts values, and builds socket-like objects where Node expects them.

const { EventEmitter } = require('node:events');
const { Duplex } = require('node:stream');
const nodeCrypto = require('node:crypto');
const path = require('node:path');

const binding = loadBinding();

function loadBinding() {
  const file = path.join(__dirname, 'pg-gateway-native.node');
  try {
    return require(file);
  } catch (err) {
    const hint = err && err.code === 'MODULE_NOT_FOUND'
      ? 'The native addon has not been built: run `npm run build` (needs Rust from https://rustup.rs).'
      : `The native addon could not be loaded: ${err && err.message}`;
    const wrapped = new Error(`pg-gateway-native: ${hint}`);
    wrapped.cause = err;
    throw wrapped;
  }
}

const HOOK_NAMES = ['onMessage', 'onStartup', 'validateCredentials', 'onAuthenticated'];
const AUTH_MODES = ['none', 'cleartextPassword', 'md5Password', 'certificate'];
const READY_STATUS = { idle: 'I', transaction: 'T', error: 'E' };
const ERROR_FIELDS = [
  'detail', 'hint', 'position', 'internalPosition', 'internalQuery', 'where', 'schema', 'table',
  'column', 'dataType', 'constraint', 'file', 'line', 'routine',
];

/** Checks pg-gateway options and turns them into the plain object the binding takes. */
function nativeOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('PostgresConnection options must be an object');
  }
  const authMode = options.authMode ?? 'md5Password';
  if (!AUTH_MODES.includes(authMode)) {
    throw new TypeError(`unknown authMode '${authMode}': expected one of ${AUTH_MODES.map((m) => `'${m}'`).join(', ')}`);
  }
  for (const name of [...HOOK_NAMES, 'onTlsUpgrade']) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`option ${name} must be a function`);
    }
  }
  if (options.serverVersion !== undefined && typeof options.serverVersion !== 'string') {
    throw new TypeError('option serverVersion must be a string');
  }
  if (options.tls !== undefined) {
    throw new Error('pg-gateway-native: the tls option is not supported yet; TLS arrives in the next release');
  }
  for (const name of ['maxMessageSize', 'authTimeout']) {
    const value = options[name];
    if (value !== undefined && !(Number.isInteger(value) && value > 0 && value <= 0xffffffff)) {
      throw new TypeError(`option ${name} must be a positive integer`);
    }
  }
  return {
    authMode,
    serverVersion: options.serverVersion,
    serverParameters: options.serverParameters,
    hooks: HOOK_NAMES.filter((name) => typeof options[name] === 'function'),
    maxMessageSize: options.maxMessageSize,
    authTimeout: options.authTimeout,
  };
}

/** pg-gateway's BackendError with every field a string, from whatever a user passed. */
function normalizeError(err, defaultSeverity = 'ERROR') {
  const source = err !== null && typeof err === 'object' ? err : { message: String(err) };
  const out = {
    severity: typeof source.severity === 'string' ? source.severity : defaultSeverity,
    code: typeof source.code === 'string' && /^[0-9A-Z]{5}$/.test(source.code) ? source.code : 'XX000',
    message: source.message === undefined ? String(err) : String(source.message),
  };
  for (const field of ERROR_FIELDS) {
    if (source[field] !== undefined && source[field] !== null) out[field] = String(source[field]);
  }
  return out;
}

function toBytes(data) {
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return data;
  throw new TypeError('data must be a Buffer, Uint8Array, ArrayBuffer or string');
}

/** The native state snapshot as pg-gateway's `State`. */
function toState(snapshot) {
  let clientInfo;
  if (snapshot.clientParameters) {
    const parameters = {};
    const flat = snapshot.clientParameters;
    for (let i = 0; i + 1 < flat.length; i += 2) parameters[flat[i]] = flat[i + 1];
    clientInfo = {
      majorVersion: snapshot.clientMajorVersion,
      minorVersion: snapshot.clientMinorVersion,
      parameters,
    };
  }
  const tlsInfo = snapshot.tls ? { sniServerName: snapshot.sniServerName ?? undefined } : undefined;
  return { hasStarted: snapshot.hasStarted, isAuthenticated: snapshot.isAuthenticated, clientInfo, tlsInfo };
}

/**
 * Calls the user's hooks for one native event and always resolves to `{ value, error? }`:
 * whatever a hook throws becomes an ErrorResponse to that client, never an unhandled
 * rejection. For `message` events, every message of the batch goes to `onMessage` in order,
 * and the loop stops at the first one the hook did not handle (the built-ins answer it).
 */
function createDispatcher(lookup) {
  return async function dispatch(event) {
    const connection = lookup(event);
    if (!connection) return { value: 0 };
    if (event.kind === 'close') {
      connection._onClose(event.reason);
      return { value: 0 };
    }
    const options = connection.options;
    const state = connection._stateFor(event.stateVersion);
    try {
      switch (event.kind) {
        case 'message':
          return await deliverMessages(connection, options.onMessage, event, state);
        case 'startup':
          return { value: (await options.onStartup(state, connection)) ? 1 : 0 };
        case 'validate':
          return { value: (await options.validateCredentials(credentials(event), state, connection)) ? 1 : 0 };
        case 'authenticated':
          await options.onAuthenticated(state, connection);
          return { value: 0 };
        default:
          return { value: 0 };
      }
    } catch (err) {
      return { value: 0, error: normalizeError(err) };
    }
  };
}

async function deliverMessages(connection, onMessage, event, state) {
  const { data, ends } = event;
  let start = 0;
  let handled = 0;
  for (const end of ends) {
    const message = data.subarray(start, end);
    start = end;
    let result;
    try {
      result = await onMessage(message, state, connection);
    } catch (err) {
      return { value: handled, error: normalizeError(err) };
    }
    if (!result) break;
    handled += 1;
    if (connection._detached) break;
  }
  return { value: handled };
}

function credentials(event) {
  if (event.authMode === 'md5Password') {
    return { authMode: 'md5Password', user: event.user, hash: event.secret, salt: new Uint8Array(event.salt) };
  }
  return { authMode: 'cleartextPassword', user: event.user, password: event.secret };
}

/** The address fields of `net.Socket`, read once from the native connection. */
function copyAddresses(target, native) {
  for (const name of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort']) {
    target[name] = native[name] ?? undefined;
  }
}

/**
 * What `connection.socket` is: the parts of a `net.Socket` a pg-gateway user touches, backed
 * by the native connection. Emits 'end' (the client closed) and 'close'.
 */
class ConnectionSocket extends EventEmitter {
  constructor(native) {
    super();
    this._native = native;
    copyAddresses(this, native);
    this.destroyed = false;
    this.encrypted = false;
  }

  write(data, encoding, callback) {
    const cb = typeof encoding === 'function' ? encoding : callback;
    const ok = this._native.sendData(toBytes(typeof data === 'string' && typeof encoding === 'string' ? Buffer.from(data, encoding) : data));
    if (cb) process.nextTick(cb);
    return ok;
  }

  end(data, encoding, callback) {
    if (typeof data === 'function') callback = data;
    else if (data !== undefined && data !== null) this.write(data, encoding);
    if (typeof encoding === 'function') callback = encoding;
    this._native.end();
    if (callback) this.once('close', callback);
    return this;
  }

  destroy(err) {
    this._native.destroy();
    if (err) process.nextTick(() => this.emit('error', err));
    return this;
  }

  get bufferSize() {
    return this._native.bufferedAmount;
  }

  setNoDelay() { return this; } // Nagle is always off: the driver sets TCP_NODELAY.
  setKeepAlive() { return this; }
  setTimeout() { return this; }
  ref() { return this; }
  unref() { return this; }
  address() {
    return { address: this.localAddress, port: this.localPort, family: this.remoteFamily };
  }
}

/**
 * What `detach()` returns: a `stream.Duplex` over the client connection, no longer parsed.
 * Bytes the gateway had read but not processed come first.
 */
class DetachedSocket extends Duplex {
  constructor(native) {
    super({ allowHalfOpen: true });
    this._native = native;
    this._reading = false;
    copyAddresses(this, native);
    this.encrypted = false;
  }

  _read(size) {
    if (this._reading) return;
    this._reading = true;
    this._native.read(Math.max(size, 64 * 1024)).then(
      (chunk) => {
        this._reading = false;
        if (chunk === null) this.push(null);
        else if (this.push(chunk)) this._read(size);
      },
      (err) => {
        this._reading = false;
        this.destroy(err);
      },
    );
  }

  _write(chunk, encoding, callback) {
    if (this._native.sendData(chunk)) callback();
    else this._native.drained().then(() => callback(), callback);
  }

  _final(callback) {
    this._native.end();
    this._native.writeClosed().then(() => callback(), callback);
  }

  _destroy(err, callback) {
    this._native.destroy();
    callback(err);
  }

  setNoDelay() { return this; }
  setKeepAlive() { return this; }
  setTimeout() { return this; }
}

/** Connections created through `new PostgresConnection(socket)`, by native id. */
const adopted = new Map();
const adoptedDispatch = createDispatcher((event) => adopted.get(event.conn));

class PostgresConnection {
  /**
   * Takes over a connected `node:net` socket. Rust reads and writes it from now on; Node's own
   * handle is closed (so `socket` emits 'close' at once) and `connection.socket` stands in.
   */
  constructor(socket, options = {}) {
    const native = nativeOptions(options);
    // pg-gateway 0.2.4 writes its default into the caller's options object; users may read it.
    if (!options.authMode) options.authMode = 'md5Password';
    const fd = socket && socket._handle && typeof socket._handle.fd === 'number' ? socket._handle.fd : -1;
    if (fd < 0) {
      throw new TypeError(
        'PostgresConnection needs a connected node:net TCP socket with a file descriptor; on other platforms and streams use createServer()',
      );
    }
    // Bytes Node already read (no pauseOnConnect) belong to the protocol: hand them over.
    socket.pause();
    const initial = socket.readableLength > 0 ? socket.read() : null;
    const handle = binding.adoptSocket(fd, initial ? toBytes(initial) : null, native, adoptedDispatch);
    // Only now may Node close its descriptor (Rust holds a duplicate). destroy(), never end():
    // end() would send FIN on the shared connection.
    socket.destroy();
    this._init(handle, options, socket);
    adopted.set(handle.id, this);
    handle.closed().then((reason) => this._onClose(reason));
  }

  static _fromNative(handle, options) {
    const connection = Object.create(PostgresConnection.prototype);
    connection._init(handle, options, null);
    return connection;
  }

  _init(handle, options, originalSocket) {
    this._native = handle;
    this.options = options;
    this._originalSocket = originalSocket;
    this._detached = false;
    this._closed = false;
    this._stateVersion = -1;
    this._stateCache = undefined;
    this.socket = new ConnectionSocket(handle);
  }

  _stateFor(version) {
    if (version !== this._stateVersion) {
      this._stateCache = toState(this._native.state());
      this._stateVersion = version;
    }
    return this._stateCache;
  }

  _onClose(reason) {
    if (this._closed) return;
    this._closed = true;
    adopted.delete(this._native.id);
    if (reason === 'detached') return;
    this.socket.destroyed = true;
    if (reason === 'end') {
      this.socket.emit('end');
      if (this._originalSocket) this._originalSocket.emit('end');
    }
    this.socket.emit('close', reason === 'error');
  }

  /** A fresh snapshot of the connection state, as in pg-gateway. */
  get state() {
    return toState(this._native.state());
  }

  get hasStarted() { return this._native.state().hasStarted; }
  get isAuthenticated() { return this._native.state().isAuthenticated; }
  get clientInfo() { return this.state.clientInfo; }
  get tlsInfo() { return this.state.tlsInfo; }

  /** Queues raw protocol bytes for the client (in order with everything else we send). */
  sendData(data) {
    return this._native.sendData(toBytes(data));
  }

  /** ErrorResponse with `S` and `V` plus every optional field given. */
  sendError(error) {
    return this._native.sendError(normalizeError(error));
  }

  sendReadyForQuery(status = 'idle') {
    const byte = READY_STATUS[status];
    if (!byte) throw new Error(`Unknown transaction status '${status}'`);
    return this._native.sendReadyForQuery(byte);
  }

  sendAuthenticationOk() {
    return this._native.sendAuthenticationOk();
  }

  sendParameterStatus(name, value) {
    return this._native.sendParameterStatus(String(name), String(value));
  }

  /** FATAL 28P01 with PostgreSQL's wording. Like pg-gateway, does not close the socket. */
  sendAuthenticationFailedError() {
    const user = this.state.clientInfo?.parameters.user;
    return this.sendError({
      severity: 'FATAL',
      code: '28P01',
      message: user ? `password authentication failed for user "${user}"` : 'password authentication failed',
    });
  }

  /**
   * Stops protocol processing and returns the client connection as a `stream.Duplex`, with
   * any bytes read but not yet processed delivered first.
   */
  detach() {
    if (!this._detached) {
      this._detached = true;
      this._native.detach();
      this._detachedSocket = new DetachedSocket(this._native);
    }
    return this._detachedSocket;
  }
}

/**
 * A PostgreSQL server whose accept loop, framing and authentication run in Rust. Hooks receive
 * the `PostgresConnection` as their last argument.
 */
class PostgresServer extends EventEmitter {
  constructor(options = {}) {
    super();
    const native = nativeOptions(options);
    if (!options.authMode) options.authMode = 'md5Password';
    this.options = options;
    this._connections = new Map();
    this._native = new binding.NativeServer(native, createDispatcher((event) => this._connectionFor(event)));
    this._address = null;
  }

  _connectionFor(event) {
    let connection = this._connections.get(event.conn);
    if (!connection) {
      if (event.kind === 'close') return undefined;
      const handle = this._native.connection(event.conn);
      if (!handle) return undefined;
      connection = PostgresConnection._fromNative(handle, this.options);
      this._connections.set(event.conn, connection);
    }
    if (event.kind === 'close') this._connections.delete(event.conn);
    return connection;
  }

  /** Binds and starts accepting. `host` defaults to 127.0.0.1, `port` to 5432 (0 = any free). */
  async listen({ port = 5432, host = '127.0.0.1' } = {}) {
    const address = await this._native.listen(host === 'localhost' ? '127.0.0.1' : host, port);
    this._address = address;
    this._serving = this._native.serving();
    this.emit('listening', address);
    return address;
  }

  /** `{ address, family, port }` while listening, like `net.Server#address()`. */
  address() {
    return this._address;
  }

  get connectionCount() {
    return this._native.connectionCount;
  }

  /** Stops accepting, ends open connections (FATAL 57P01), resolves when all are closed. */
  async close() {
    await this._native.close();
    this._address = null;
    this.emit('close');
  }
}

function createServer(options) {
  return new PostgresServer(options);
}

/** `'md5' + md5hex(md5hex(password + user) + salt)`, exactly what libpq sends. */
async function hashMd5Password(user, password, salt) {
  return binding.hashMd5PasswordSync(String(user), String(password), toBytes(salt));
}

/** Lowercase hex MD5 digest. */
async function md5(value) {
  return nodeCrypto.createHash('md5').update(value).digest('hex');
}

function generateMd5Salt() {
  return nodeCrypto.getRandomValues(new Uint8Array(4));
}

/** A StartupMessage (no type byte) for `clientInfo`, e.g. to replay it to an upstream. */
function createStartupMessage(clientInfo) {
  const flat = [];
  for (const [name, value] of Object.entries(clientInfo.parameters ?? {})) {
    if (value !== undefined) flat.push(String(name), String(value));
  }
  return binding.encodeStartupMessage(clientInfo.majorVersion ?? 3, clientInfo.minorVersion ?? 0, flat);
}

/** Builds a TypeScript-style numeric enum object (with reverse mapping), as 0.2.4 ships. */
function numericEnum(entries) {
  const result = {};
  for (const [name, value] of entries) {
    result[(result[name] = value)] = name;
  }
  return result;
}

const FrontendMessageCode = numericEnum([
  ['Query', 81], ['Parse', 80], ['Bind', 66], ['Execute', 69], ['FunctionCall', 70], ['Flush', 72],
  ['Close', 67], ['Describe', 68], ['CopyFromChunk', 100], ['CopyDone', 99], ['CopyData', 100],
  ['CopyFail', 102], ['Password', 112], ['Sync', 83], ['Terminate', 88],
]);

const BackendMessageCode = numericEnum([
  ['DataRow', 68], ['ParseComplete', 49], ['BindComplete', 50], ['CloseComplete', 51],
  ['CommandComplete', 67], ['ReadyForQuery', 90], ['NoData', 110], ['NotificationResponse', 65],
  ['AuthenticationResponse', 82], ['ParameterStatus', 83], ['BackendKeyData', 75],
  ['ErrorMessage', 69], ['NoticeMessage', 78], ['RowDescriptionMessage', 84],
  ['ParameterDescriptionMessage', 116], ['PortalSuspended', 115], ['ReplicationStart', 87],
  ['EmptyQuery', 73], ['CopyIn', 71], ['CopyOut', 72], ['CopyDone', 99], ['CopyData', 100],
]);

module.exports = {
  PostgresConnection,
  PostgresServer,
  createServer,
  hashMd5Password,
  md5,
  generateMd5Salt,
  createStartupMessage,
  FrontendMessageCode,
  BackendMessageCode,
};

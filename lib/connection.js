'use strict';
// PostgresConnection: pg-gateway 0.2.4's class. Two drivers run the same Rust session:
// - 'js' (default): Node keeps the socket; each read is fed to the session on the JS thread
//   and hooks are called directly. `connection.socket` is your socket, as in 0.2.4.
// - 'native': Rust takes the socket's file descriptor over and drives it on tokio threads;
//   hooks are called through a thread-safe function. `connection.socket` is a stand-in.

const net = require('node:net');
const binding = require('./binding.js');
const { createStartupMessage } = require('./helpers.js');
const {
  nativeOptions, normalizeError, toBytes, toState, settle, warnOnce, MisconfiguredCertificateAuth,
} = require('./values.js');
const { JsDriver } = require('./js-driver.js');
const { abortRunning, dropCursors } = require('./query.js');
const { createDispatcher, ConnectionSocket, DetachedSocket } = require('./native-driver.js');

const READY_STATUS = { idle: 'I', transaction: 'T', error: 'E' };

/** Connections of the native driver created with `new PostgresConnection`, by native id. */
const adopted = new Map();
const adoptedDispatch = createDispatcher((event) => adopted.get(event.conn));

/** One backend message, for the small encoders below. */
function backendMessage(type, body) {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}

/**
 * The options as the binding takes them. `authMode: 'certificate'` without `tls` is accepted
 * here, as pg-gateway 0.2.4 does, because throwing would happen inside the user's `net`
 * connection callback and take the process down: every client is refused with
 * `FATAL 08000` by the session instead, and the process is warned once.
 */
function connectionOptions(options) {
  try {
    return nativeOptions(options);
  } catch (err) {
    if (!(err instanceof MisconfiguredCertificateAuth)) throw err;
    warnOnce(`${err.message}; every client is refused with FATAL 08000`, 'PG_GATEWAY_CERTIFICATE_WITHOUT_TLS');
    return nativeOptions(options, { allowCertificateWithoutTls: true });
  }
}

class PostgresConnection {
  constructor(socket, options = {}) {
    const native = connectionOptions(options);
    // pg-gateway 0.2.4 writes its default into the caller's options object; users may read it.
    if (!options.authMode) options.authMode = 'md5Password';
    this.options = options;
    this._detached = false;
    this._stateVersion = -1;
    this._stateCache = undefined;
    if ((options.driver ?? 'js') === 'native') {
      this._adopt(socket, native);
    } else {
      if (!socket || typeof socket.on !== 'function' || typeof socket.write !== 'function') {
        throw new TypeError('PostgresConnection needs a connected socket (a node:net Socket or another Duplex)');
      }
      this.socket = socket;
      this._driver = new JsDriver(this, socket, new binding.NativeConfig(native));
      this._handle = this._driver; // state() for the js driver
    }
  }

  /** The native driver: Rust duplicates the descriptor and Node closes its own handle. */
  _adopt(socket, native) {
    const fd = socket && socket._handle && typeof socket._handle.fd === 'number' ? socket._handle.fd : -1;
    if (fd < 0) {
      // The caller may catch this and serve the socket with the js driver instead; if nobody
      // takes it by the next turn, it is closed, so that its client hears EOF at once rather
      // than waiting on a socket nobody serves (Deno's node:net sockets have no descriptor).
      if (socket && typeof socket.destroy === 'function') {
        setImmediate(() => {
          if (!socket.destroyed && socket.listenerCount('data') === 0) socket.destroy();
        });
      }
      const runtime = process.versions.deno ? ` (Deno ${process.versions.deno}'s sockets have none)` : '';
      throw new TypeError(
        `driver 'native' needs a connected node:net TCP socket with a file descriptor${runtime}; use the default driver or createServer()`,
      );
    }
    // Bytes Node already read (no pauseOnConnect) belong to the protocol: hand them over.
    socket.pause();
    const initial = socket.readableLength > 0 ? socket.read() : null;
    const handle = binding.adoptSocket(fd, initial ? toBytes(initial) : null, native, adoptedDispatch);
    // Only now may Node close its descriptor. destroy(), never end(): end() would send FIN on
    // the connection Rust now serves.
    socket.destroy();
    this._initNative(handle, socket);
    adopted.set(handle.id, this);
    handle.closed().then((reason) => this._onClose(reason));
  }

  /** A connection of the Rust listener (`createServer`). */
  static _fromNative(handle, options) {
    const connection = Object.create(PostgresConnection.prototype);
    connection.options = options;
    connection._detached = false;
    connection._stateVersion = -1;
    connection._stateCache = undefined;
    connection._initNative(handle, null);
    return connection;
  }

  _initNative(handle, originalSocket) {
    this._native = handle;
    this._handle = handle;
    this._originalSocket = originalSocket;
    this._closed = false;
    this._socket = null;
  }

  /**
   * Your socket on the 'js' driver, as in 0.2.4. On the native driver a stand-in, made on first
   * use: it is an EventEmitter, and most connections of a server never touch it.
   */
  get socket() {
    if (this._socket === null && this._native) {
      this._socket = new ConnectionSocket(this._native, this);
      this._socket.destroyed = this._closed;
    }
    return this._socket;
  }

  set socket(socket) {
    this._socket = socket;
  }

  _stateFor(version) {
    if (version !== this._stateVersion) {
      this._stateCache = toState(this._handle.state());
      this._stateVersion = version;
    }
    return this._stateCache;
  }

  /**
   * A CancelRequest with this connection's key arrived (on any connection of the process):
   * `onCancel(state, connection)`. What it throws or rejects has nobody to go to (the
   * cancelling client gets no answer, as from PostgreSQL) and is dropped.
   */
  _cancelled(state) {
    abortRunning(this);
    const hook = this.options.onCancel;
    if (typeof hook !== 'function') return;
    settle(() => hook.call(this.options, state, this), () => {});
  }

  /** Native driver: a detached connection's stream closed; nothing more will come. */
  _released() {
    adopted.delete(this._native.id);
  }

  /** Native driver: the Rust side has finished with the connection. */
  _onClose(reason) {
    if (this._closed) return;
    this._closed = true;
    dropCursors(this);
    // A detached connection stays reachable (for onCancel) until its stream closes too.
    if (reason === 'detached') return;
    adopted.delete(this._native.id);
    // No stand-in yet means nobody listens to it: one made later starts out destroyed.
    const socket = this._socket;
    if (socket) {
      socket.destroyed = true;
      clearTimeout(socket._idleTimer);
    }
    if (reason === 'end') {
      socket?.emit('end');
      if (this._originalSocket) this._originalSocket.emit('end');
    }
    socket?.emit('close', reason === 'error');
  }

  /** A fresh snapshot of the connection state, as in pg-gateway. */
  get state() {
    return toState(this._handle.state());
  }

  get hasStarted() { return this.state.hasStarted; }
  get isAuthenticated() { return this.state.isAuthenticated; }
  get clientInfo() { return this.state.clientInfo; }
  get tlsInfo() { return this.state.tlsInfo; }

  /** Queues raw protocol bytes for the client, in order with everything else we send. */
  sendData(data) {
    const bytes = toBytes(data);
    return this._driver ? this._driver.write(bytes) : this._nativeSent(this._native.sendData(bytes));
  }

  /** `onQuery` results: false once the client is behind (then wait for `_whenWritable()`). */
  _writeQueryOutput(bytes) {
    return this._driver ? this._driver.writeQueryOutput(bytes) : this._nativeSent(this._native.sendData(bytes));
  }

  /** Whether results can no longer reach the client (it left, or the session closed). */
  _queryOutputClosed() {
    if (this._driver) {
      const socket = this._driver.socket;
      return socket.destroyed || socket.writableEnded || this._driver.closing;
    }
    return this._closed;
  }

  _whenWritable() {
    return this._driver ? this._driver.whenWritable() : this._native.drained().then(undefined, () => {});
  }

  /**
   * Native driver: what a write said. `false` (output above the high-water mark) is noted, so
   * that an `onMessage` batch checks the native buffer only after such a write, not after
   * every message.
   */
  _nativeSent(ok) {
    if (!ok) this._mayBeBackedUp = true;
    return ok;
  }

  /** ErrorResponse with `S` and `V` plus every optional field given. */
  sendError(error) {
    const err = normalizeError(error, 'ERROR', { sent: true });
    return this._driver ? this._driver.write(binding.encodeErrorResponse(err)) : this._nativeSent(this._native.sendError(err));
  }

  sendReadyForQuery(status = 'idle') {
    const byte = READY_STATUS[status];
    if (!byte) throw new Error(`Unknown transaction status '${status}'`);
    return this._driver ? this._driver.write(backendMessage('Z', Buffer.from(byte))) : this._nativeSent(this._native.sendReadyForQuery(byte));
  }

  /** AuthenticationOk; a hook that authenticates the client itself also tells the session so. */
  sendAuthenticationOk() {
    if (!this._driver) return this._native.sendAuthenticationOk();
    const ok = this._driver.write(backendMessage('R', Buffer.alloc(4)));
    binding.sessionAuthenticatedByHook(this._driver.handle);
    return ok;
  }

  sendParameterStatus(name, value) {
    if (this._driver) {
      return this._driver.write(backendMessage('S', Buffer.from(`${String(name).split('\0')[0]}\0${String(value).split('\0')[0]}\0`)));
    }
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
   * Stops protocol processing and returns the client connection, with any bytes read but not
   * yet processed delivered first: your own socket on the 'js' driver (as in 0.2.4), a
   * `stream.Duplex` on the native one.
   */
  detach() {
    if (this._driver) {
      if (!this._detached) {
        this._detached = true;
        this._detachedSocket = this._driver.requestDetach();
      }
      return this._detachedSocket;
    }
    if (!this._detached) {
      this._detached = true;
      this._native.detach();
      this._detachedSocket = new DetachedSocket(this._native);
    }
    return this._detachedSocket;
  }
}

/** The error a client gets when the upstream of `proxy()` cannot be reached. */
function upstreamError(host, port, err) {
  return binding.encodeErrorResponse({
    severity: 'FATAL',
    code: '08006',
    message: `could not connect to upstream server ${host}:${port}: ${err.message}`,
  });
}

/**
 * Sends the connection to another PostgreSQL server and copies both directions: in Rust on the
 * native driver and createServer (no payload crosses into JS), with Node streams on the 'js'
 * driver. Bytes read but not processed go first; with `startup: true`, the client's
 * StartupMessage (already consumed by the gateway) is replayed before them. Returns at once:
 * the switch happens when the current hook returns, so never wait for it inside a hook.
 */
PostgresConnection.prototype.proxy = function proxy({
  host = '127.0.0.1', port, startup = false, connectTimeout = DEFAULT_CONNECT_TIMEOUT_MS,
} = {}) {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new TypeError('proxy({ host, port }): port must be a TCP port');
  if (!Number.isInteger(connectTimeout) || connectTimeout <= 0 || connectTimeout > 2 ** 31 - 1) {
    throw new TypeError('proxy({ connectTimeout }): milliseconds, an integer from 1 to 2147483647');
  }
  if (this._detached) throw new Error('this connection was already detached or proxied');
  if (!this._driver) {
    this._detached = true;
    this._native.proxy(String(host), port, Boolean(startup), connectTimeout);
    return;
  }
  const info = this.state.clientInfo;
  const client = this.detach();
  const upstream = net.connect({ host, port });
  upstream.setNoDelay(true);
  if (startup && info) upstream.write(createStartupMessage({ ...info, minorVersion: 0 }));
  let connected = false;
  // PgBouncer's server_connect_timeout: an upstream that drops SYNs must not hold the client.
  const timer = setTimeout(() => upstream.destroy(new Error(`timed out after ${connectTimeout} ms`)), connectTimeout);
  timer.unref();
  upstream.once('connect', () => {
    connected = true;
    clearTimeout(timer);
  });
  client.pipe(upstream);
  // Until the upstream's first ReadyForQuery, its BackendKeyData becomes ours (in place), so
  // the client's cancels come to us and are forwarded with the upstream's own key.
  const handle = this._driver.handle;
  let rewriting = true;
  upstream.on('data', (chunk) => {
    if (rewriting) rewriting = !binding.sessionUpstreamData(handle, chunk, String(host), port);
    if (!client.write(chunk)) upstream.pause();
  });
  client.on('drain', () => upstream.resume());
  upstream.on('end', () => client.end());
  upstream.on('error', (err) => {
    if (connected) client.destroy();
    else client.end(upstreamError(host, port, err));
  });
  upstream.on('close', () => clearTimeout(timer));
  client.on('error', () => upstream.destroy());
  client.on('close', () => upstream.destroy());
};

/** How long `proxy()` waits for the upstream to accept (PgBouncer's server_connect_timeout). */
const DEFAULT_CONNECT_TIMEOUT_MS = 15000;

module.exports = { PostgresConnection };

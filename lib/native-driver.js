'use strict';
// The tokio driver's JS side: hook calls arrive from Rust threads through one dispatch
// function per server (or adopted socket); the connection's socket is a stand-in backed by the
// native connection, and detach() returns a Duplex over it.

const { EventEmitter } = require('node:events');
const binding = require('./binding.js');
const { reportError, connectionProblem } = require('./report.js');
const { writeNative } = require('./log.js');
const { Duplex } = require('node:stream');
const { normalizeError, toBytes, offerMessages, copyAddresses } = require('./values.js');
const { callHook } = require('./hooks.js');
const { answerQuery } = require('./query.js');

/** Output held for one connection above which an `onMessage` batch pauses (as in Rust). */
const OUTPUT_HIGH_WATER = binding.OUTPUT_HIGH_WATER;

/**
 * Calls the user's hooks for one native event and answers Rust with exactly one
 * `hookReply(call, reply)`: at once when the hook is synchronous (no promise, no microtask on
 * the way), after it settles when it is not. Whatever a hook throws becomes an ErrorResponse
 * to that client, never an unhandled rejection. For `message` events, the messages of the
 * batch go to `onMessage` in order (see `offerMessages`).
 */
function createDispatcher(lookup) {
  return function dispatch(event) {
    const call = event.call;
    // Even an answer Rust cannot read (say, tls options of the wrong type) becomes an error
    // reply: a call without one would wait forever.
    const reply = (answer) => {
      if (call === 0) return;
      try {
        binding.hookReply(call, answer);
      } catch (err) {
        binding.hookReply(call, failure(err));
      }
    };
    try {
      handle(lookup(event), event, reply);
    } catch (err) {
      reply(failure(err));
    }
  };
}

function handle(connection, event, reply) {
  if (event.kind === 'log') {
    if (connection) writeNative(connection.options, event.log);
    return reply({ value: 0 });
  }
  if (event.kind === 'problem') {
    if (connection) reportError(connection, connectionProblem(event.reason));
    return reply({ value: 0 });
  }
  if (!connection) return reply({ value: 0 });
  if (event.kind === 'released') {
    connection._released();
    return reply({ value: 0 });
  }
  if (event.kind === 'close') {
    connection._onClose(event.reason);
    return reply({ value: 0 });
  }
  if (event.kind === 'cancel') {
    connection._cancelled(connection._stateFor(event.stateVersion));
    return reply({ value: 0 });
  }
  const state = connection._stateFor(event.stateVersion);
  if (event.kind === 'query') {
    return answerQuery(connection, event, state, (completed, suspended, data, error) => {
      if (event.call !== 0) binding.queryReply(event.call, completed, suspended, data, error);
    });
  }
  if (event.kind !== 'message') return callHook(connection, event, state, reply);
  const native = connection._native;
  return offerMessages(connection.options.onMessage, event.data, 0, 0, state, connection, {
    messagesDone: (count, error, backlog) => reply({ value: count, error, paused: backlog !== undefined }),
    // Only after a write that said "above the mark" is the native buffer asked (a crossing
    // and a lock): a batch of small answers costs nothing extra per message.
    backedUp: () => {
      if (!connection._mayBeBackedUp) return undefined;
      const unsent = native.bufferedAmount;
      if (unsent > OUTPUT_HIGH_WATER) return unsent;
      connection._mayBeBackedUp = false;
      return undefined;
    },
  });
}

/** The reply for a failure outside the user's hooks (normalizeError never throws). */
function failure(err) {
  return { value: 0, error: normalizeError(err) };
}

/**
 * What `connection.socket` is: the parts of a `net.Socket` a pg-gateway user touches, backed
 * by the native connection. Emits 'end' (the client closed) and 'close'.
 */
class ConnectionSocket extends EventEmitter {
  constructor(native, connection) {
    super();
    this._native = native;
    this._connection = connection;
    copyAddresses(this, native);
    this.destroyed = false;
    this.encrypted = false;
    this._drainPending = false;
  }

  write(data, encoding, callback) {
    const cb = typeof encoding === 'function' ? encoding : callback;
    const ok = this._native.sendData(toBytes(typeof data === 'string' && typeof encoding === 'string' ? Buffer.from(data, encoding) : data));
    if (cb) process.nextTick(cb);
    if (!ok) {
      if (this._connection) this._connection._mayBeBackedUp = true;
      this._drainLater();
    }
    return ok;
  }

  /** A write returned false: emit 'drain' once the output is under the high-water mark. */
  _drainLater() {
    if (this._drainPending) return;
    this._drainPending = true;
    this._native.drained().then(() => {
      this._drainPending = false;
      if (!this.destroyed) this.emit('drain');
    }, () => {
      this._drainPending = false;
    });
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

  /** Rust owns the socket and sets no TCP keepalive; asking for it is an error, not a no-op. */
  setKeepAlive(enable) {
    if (!enable) return this;
    throw Object.assign(new Error(
      "setKeepAlive is not available on createServer and driver 'native' connections (the socket is Rust's); "
      + "use the 'js' driver with your own net.Server for TCP keepalive, or setTimeout for idle connections",
    ), { code: 'ERR_PG_GATEWAY_UNSUPPORTED' });
  }

  /**
   * As `net.Socket#setTimeout`: 'timeout' once no byte has moved either way for `ms` (then
   * again after the next activity and `ms` more of idleness); 0 turns it off. The socket stays
   * open: end it in the listener, as with Node. Activity is sampled (Rust counts bytes; no
   * clock is read per read or write), so it fires up to a quarter of `ms` late.
   */
  setTimeout(ms, callback) {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`setTimeout: ms must be a non-negative number, got ${ms}`);
    clearTimeout(this._idleTimer);
    this._idleTimer = null;
    if (callback) {
      if (ms === 0) this.off('timeout', callback);
      else this.once('timeout', callback);
    }
    this._idleMs = ms;
    if (ms === 0 || this.destroyed) return this;
    // As with Node, the clock starts now, whatever happened before.
    this._quietSince = Date.now();
    this._seenBytes = this._native.bytesRead + this._native.bytesWritten;
    this._fired = false;
    this._checkIdle(Math.max(10, Math.floor(ms / 4)));
    return this;
  }

  /** Every `step` ms: bytes moved since the last look, or `_idleMs` of quiet ('timeout'). */
  _checkIdle(step) {
    const timer = setTimeout(() => {
      // A setTimeout() call since (a 'timeout' listener's, say) started a chain of its own.
      if (this._idleTimer !== timer || this.destroyed || this._idleMs === 0) return;
      const now = Date.now();
      const bytes = this._native.bytesRead + this._native.bytesWritten;
      if (bytes !== this._seenBytes) {
        this._seenBytes = bytes;
        this._quietSince = now;
        this._fired = false;
      } else if (!this._fired && now - this._quietSince >= this._idleMs) {
        // Once per stretch of quiet: the next 'timeout' needs activity first.
        this._fired = true;
        this.emit('timeout');
      }
      if (this._idleTimer === timer && !this.destroyed && this._idleMs !== 0) this._checkIdle(step);
    }, step);
    timer.unref?.();
    this._idleTimer = timer;
  }

  get bytesRead() {
    return this._native.bytesRead;
  }

  get bytesWritten() {
    return this._native.bytesWritten;
  }
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
    this.encrypted = native.encrypted;
    this._ending = false;
    // When the connection can no longer send because the client went away, close the stream.
    // When it stopped because we ended our side (`_final`), the client may still be sending:
    // under allowHalfOpen its data is read to the end and the stream closes as any Duplex.
    native.writeClosed().then(() => {
      if (!this._ending && !this.destroyed) this.destroy();
    }, () => {});
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
        // A client reset must not take the process down: report it only to someone listening.
        this.destroy(this.listenerCount('error') > 0 ? err : undefined);
      },
    );
  }

  _write(chunk, encoding, callback) {
    if (this._native.sendData(chunk)) callback();
    else this._native.drained().then(() => callback(), callback);
  }

  _final(callback) {
    this._ending = true;
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

module.exports = { createDispatcher, ConnectionSocket, DetachedSocket };

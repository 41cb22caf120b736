'use strict';
// The tokio driver's JS side: hook calls arrive from Rust threads through one dispatch
// function per server (or adopted socket); the connection's socket is a stand-in backed by the
// native connection, and detach() returns a Duplex over it.

const { EventEmitter } = require('node:events');
const binding = require('./binding.js');
const { Duplex } = require('node:stream');
const { normalizeError, toBytes, credentials, chooseTls, copyAddresses } = require('./values.js');

/**
 * Calls the user's hooks for one native event and always resolves to `{ value, error? }`:
 * whatever a hook throws becomes an ErrorResponse to that client, never an unhandled
 * rejection. For `message` events, every message of the batch goes to `onMessage` in order,
 * and the loop stops at the first one the hook did not handle (the built-ins answer it).
 */
function createDispatcher(lookup) {
  // Every event with a call id gets exactly one hookReply, whatever the hook does: even an
  // answer Rust cannot read (say, tls options of the wrong type) becomes an error reply.
  return function dispatch(event) {
    const call = event.call;
    const reply = (answer) => {
      if (call === 0) return;
      try {
        binding.hookReply(call, answer);
      } catch (err) {
        binding.hookReply(call, failure(err));
      }
    };
    handle(event).then(reply, (err) => reply(failure(err)));
  };
  async function handle(event) {
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
        case 'tlsUpgrade':
          await options.onTlsUpgrade(state, connection);
          return { value: 0 };
        case 'tls':
          return await new Promise((resolve) => {
            chooseTls(options.tls, event.sniServerName, (tls, error) => resolve({ value: 0, tls, error }));
          });
        default:
          return { value: 0 };
      }
    } catch (err) {
      return { value: 0, error: normalizeError(err) };
    }
  }
}

/** The reply for a failure outside the user's hooks (normalizeError never throws). */
function failure(err) {
  return { value: 0, error: normalizeError(err) };
}

async function deliverMessages(connection, onMessage, event, state) {
  // Whole messages back to back: their own length fields delimit them (4 bytes before
  // startup, type byte plus 4 after).
  const { data } = event;
  const typed = state.hasStarted;
  let start = 0;
  let handled = 0;
  while (start < data.length) {
    const end = typed ? start + 1 + data.readInt32BE(start + 1) : start + data.readInt32BE(start);
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
    this.encrypted = native.encrypted;
    // When the connection can no longer send (reset, or both sides ended), close the stream.
    native.writeClosed().then(() => {
      if (!this.destroyed) this.destroy();
    });
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

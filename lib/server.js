'use strict';
// createServer(): the Rust listener. Accept, framing and authentication never touch the JS
// thread; hooks are called through one dispatch function and receive the connection last.

const { EventEmitter } = require('node:events');
const binding = require('./binding.js');
const { nativeOptions } = require('./values.js');
const { createDispatcher } = require('./native-driver.js');
const { PostgresConnection } = require('./connection.js');

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
    // A connection that failed before any hook ran was never made a PostgresConnection.
    if (event.kind === 'problem' || event.kind === 'log') return connection ?? { options: this.options, state: undefined, isPlaceholder: true };
    if (event.kind === 'released') {
      // A detached connection's stream closed: it is gone for good.
      this._connections.delete(event.conn);
      return undefined;
    }
    if (!connection) {
      if (event.kind === 'close') return undefined;
      const handle = this._native.connection(event.conn);
      if (!handle) return undefined;
      connection = PostgresConnection._fromNative(handle, this.options);
      this._connections.set(event.conn, connection);
    }
    // A detached connection stays known (for onCancel) until 'released'.
    if (event.kind === 'close' && event.reason !== 'detached') this._connections.delete(event.conn);
    return connection;
  }

  /**
   * Binds and starts accepting: `listen({ port, host })`, or as `net.Server#listen`,
   * `listen(port, host?, callback?)`. `host` defaults to 127.0.0.1, `port` to 5432 (0 = any
   * free). Fails with Node's error codes (`EADDRINUSE`, `EACCES`, ...).
   */
  async listen(...args) {
    const callback = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    const [first, second] = args;
    const given = first !== null && typeof first === 'object' ? first : { port: first, host: second };
    let port = given.port ?? 5432;
    const host = given.host ?? '127.0.0.1';
    if (typeof port === 'string' && /^\d+$/.test(port)) port = Number(port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw Object.assign(new RangeError(`listen: port must be an integer from 0 to 65535, got ${JSON.stringify(port)}`), { code: 'ERR_SOCKET_BAD_PORT' });
    }
    if (typeof host !== 'string') throw new TypeError(`listen: host must be an IP address string, got ${typeof host}`);
    let address;
    try {
      address = await this._native.listen(host === 'localhost' ? '127.0.0.1' : host, port);
    } catch (err) {
      const code = /^listen (E[A-Z]+): /.exec(err.message)?.[1];
      if (code) Object.assign(err, { code, syscall: 'listen', address: host, port });
      // With a callback, as net.Server: the error is emitted (thrown without a listener),
      // and the promise nobody awaits does not reject on top of it.
      if (callback) {
        process.nextTick(() => this.emit('error', err));
        return undefined;
      }
      throw err;
    }
    this._address = address;
    // Pending while listening: keeps Node alive, as a listening net.Server does.
    this._serving = this._native.serving();
    this.emit('listening', address);
    if (callback) callback();
    return address;
  }

  /** `{ address, family, port }` while listening, like `net.Server#address()`. */
  address() {
    return this._address;
  }

  /**
   * Counters since the server was made: connections open, total and refused (53300), bytes
   * received and sent, hook calls and their time, authentication failures, TLS handshakes done
   * and failed. Cheap enough to leave on (relaxed atomic adds in Rust).
   */
  stats() {
    return this._native.stats();
  }

  get connectionCount() {
    return this._native.connectionCount;
  }

  /**
   * Stops accepting and ends open connections with FATAL 57P01: each at once if no hook of it
   * runs, or when its hook settles; at `gracePeriod` ms whatever still runs is cut. Resolves
   * when every connection is closed.
   */
  async close({ gracePeriod = 10000 } = {}) {
    if (!Number.isInteger(gracePeriod) || gracePeriod < 0 || gracePeriod > 2 ** 31 - 1) {
      throw new TypeError('close({ gracePeriod }): milliseconds, an integer from 0 to 2147483647');
    }
    await this._native.close(gracePeriod);
    this._address = null;
    this.emit('close');
  }
}

function createServer(options) {
  return new PostgresServer(options);
}

module.exports = { PostgresServer, createServer };

'use strict';
// The JS-thread driver: Node reads and writes the socket; the Rust session (framing, limits,
// startup, auth, built-in answers) runs synchronously inside each 'data' event; user hooks are
// called directly. No thread hop per hook, which is what a request/response workload through
// `onMessage` pays for on the tokio driver.

const binding = require('./binding.js');
const { Duplex } = require('node:stream');
const { credentials, settle, offerMessages, chooseTls, copyAddresses } = require('./values.js');

const STEP_NEED_INPUT = 0;
const STEP_HOOK = 1;
const STEP_CLOSE = 2;
const STEP_NONE = 3;
const STEP_MASK = 3;
const HAS_OUTPUT = 4;
const IS_TLS = 8;
const OFFERS_FED_BYTES = 16;
const VERSION_SHIFT = 5;

class JsDriver {
  /**
   * @param connection the PostgresConnection whose hooks run here
   * @param socket a connected duplex (normally a `net.Socket`)
   * @param config a binding.NativeConfig
   */
  constructor(connection, socket, config) {
    this.connection = connection;
    this.socket = socket;
    this.handle = binding.sessionNew(config);
    this.busy = false;
    this.detached = false;
    this.waitingForDrain = false;
    this.resumeAfterHook = () => this.resume();
    // The step the session asked for last (see `run`); set by every call that polls.
    this.step = STEP_NONE;
    // Whether writes must be sealed; from the step codes, so a write costs no native call.
    this.tls = false;
    this.onData = (chunk) => {
      // While a hook is pending the session must not be polled: only take the bytes.
      if (this.busy || this.detached) binding.sessionReceive(this.handle, chunk);
      else this.pump(binding.sessionFeed(this.handle, chunk), chunk);
    };
    this.onEnd = () => {
      binding.sessionReceiveEof(this.handle);
      this.pump();
    };
    // A client that resets the connection must end that connection only: without an 'error'
    // listener Node would throw and take the process down (pg-gateway 0.2.4 does).
    this.onError = () => this.socket.destroy();
    this.onClose = () => this.stopTimer();
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    // PostgreSQL's authentication_timeout: a startup that stalls is closed without a word.
    this.timer = setTimeout(() => {
      if (!binding.sessionIsAuthenticated(this.handle) && !this.detached) socket.destroy();
    }, config.authTimeout);
    this.timer.unref?.();
    // A socket from `pauseOnConnect` stays paused until told otherwise.
    socket.resume();
  }

  /** The session's state snapshot (what `connection.state` is built from). */
  state() {
    return binding.sessionState(this.handle);
  }

  stopTimer() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Sends protocol bytes from the user, encrypted once TLS is up. */
  write(bytes) {
    return this.writeWire(this.tls ? binding.sessionSeal(this.handle, bytes) : bytes);
  }

  /** Sends wire bytes; when the client stops reading, stop reading from it until it catches up. */
  writeWire(bytes) {
    if (this.socket.destroyed) return false;
    const ok = this.socket.write(bytes);
    if (!ok && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.socket.pause();
      this.socket.once('drain', () => {
        this.waitingForDrain = false;
        if (!this.detached) this.socket.resume();
      });
    }
    return ok;
  }

  /** Runs the session until it needs input, closes, or waits for an async hook. */
  pump(step, fed) {
    // Never poll while a hook is pending: the session would take it as a driver bug.
    if (this.busy || this.detached) return;
    if (step === undefined) step = binding.sessionPoll(this.handle);
    this.busy = true;
    // Everything written while the session runs synchronously (its own replies and the
    // hooks' sendData) leaves in one writev, as the tokio driver's single buffer does.
    this.socket.cork();
    try {
      this.run(step, fed);
    } finally {
      this.socket.uncork();
    }
  }

  /**
   * The pump's loop: `step` is what the session asked for last; `fed` the chunk `feed()` took,
   * which is what `onMessage` gets when the step says the offer is exactly those bytes.
   */
  run(step, fed) {
    for (;;) {
      if (step & IS_TLS) this.tls = true;
      if (step & HAS_OUTPUT) this.writeWire(binding.sessionTakeOutput(this.handle));
      const kind = step & STEP_MASK;
      if (kind === STEP_NEED_INPUT) break;
      if (kind === STEP_CLOSE) {
        this.stopTimer();
        this.socket.end();
        break;
      }
      if (kind === STEP_HOOK) {
        const pending = step & OFFERS_FED_BYTES
          ? this.offer(fed, step >>> VERSION_SHIFT)
          : this.runHook(step >>> VERSION_SHIFT);
        if (pending) {
          pending.then(this.resumeAfterHook);
          return; // still busy: nothing else runs until the hook has settled
        }
      }
      if (this.detached) return this.finishDetach();
      step = this.step; // the hook's done-call polled already
    }
    if (this.timer && binding.sessionIsAuthenticated(this.handle)) this.stopTimer();
    this.busy = false;
  }

  resume() {
    this.busy = false;
    if (this.detached) return this.finishDetach();
    const step = this.step;
    // How an async onMessage usually ends (PGlite): the session only wants more input, so
    // there is nothing to pump.
    if ((step & (STEP_MASK | HAS_OUTPUT)) === STEP_NEED_INPUT) {
      if (this.timer && binding.sessionIsAuthenticated(this.handle)) this.stopTimer();
      return;
    }
    this.pump(step);
  }

  /**
   * Whether a hook's done-call should poll the session on: not once the hook detached the
   * connection (the bytes behind belong to the detached stream).
   */
  get pollAfterHook() {
    return !this.connection._detached;
  }

  /** Records the step a hook's done-call returned. */
  afterHook(step) {
    this.step = step;
    if (step & IS_TLS) this.tls = true;
  }

  /** Calls the hook the session asked for; returns a promise only if the hook is async. */
  runHook(stateVersion) {
    const handle = this.handle;
    const messages = binding.sessionTakeMessages(handle);
    if (messages !== null) return this.offer(messages, stateVersion);
    const event = binding.sessionHook(handle);
    const options = this.connection.options;
    const connection = this.connection;
    const state = connection._stateFor(event.stateVersion);
    switch (event.kind) {
      case 'startup':
        return settle(() => options.onStartup(state, connection), (value, error) => this.afterHook(binding.sessionBoolDone(handle, Boolean(value), error, this.pollAfterHook)));
      case 'validate':
        return settle(
          () => options.validateCredentials(credentials(event), state, connection),
          (value, error) => this.afterHook(binding.sessionBoolDone(handle, Boolean(value), error, this.pollAfterHook)),
        );
      case 'authenticated':
        return settle(() => options.onAuthenticated(state, connection), (_, error) => this.afterHook(binding.sessionVoidDone(handle, error, this.pollAfterHook)));
      case 'tls':
        return chooseTls(options.tls, event.sniServerName, (tls, error) => this.afterHook(binding.sessionTlsDone(handle, tls, error, this.pollAfterHook)));
      case 'tlsUpgrade':
        return settle(() => options.onTlsUpgrade(state, connection), (_, error) => this.afterHook(binding.sessionVoidDone(handle, error, this.pollAfterHook)));
      default:
        this.step = binding.sessionPoll(handle);
        return undefined;
    }
  }

  /** Offers the messages in `data` to `onMessage` (see `offerMessages`). */
  offer(data, stateVersion) {
    const connection = this.connection;
    return offerMessages(connection.options.onMessage, data, 0, 0, connection._stateFor(stateVersion), connection, this);
  }

  /** `offerMessages`' outcome: `count` messages handled, then the session goes on. */
  messagesDone(count, error) {
    this.afterHook(binding.sessionMessagesDone(this.handle, count, error, this.pollAfterHook));
  }

  /**
   * `detach()` was called: stop listening and hand back what was read but not processed.
   * Returns what the user gets: the socket itself, or, after TLS, a Duplex that decrypts it.
   */
  requestDetach() {
    this.detached = true;
    this.stopTimer();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.pause();
    if (binding.sessionIsTls(this.handle)) this.tlsStream = new TlsDetachedSocket(this);
    // Outside a hook, nothing is in flight: hand over now. Inside one, after it has settled.
    if (!this.busy) this.finishDetach();
    return this.tlsStream ?? this.socket;
  }

  finishDetach() {
    if (this.handedOver) return;
    this.handedOver = true;
    this.busy = false;
    const leftover = binding.sessionTakeUnprocessedInput(this.handle);
    if (this.tlsStream) {
      this.tlsStream.start(leftover);
      return;
    }
    if (leftover.length > 0) this.socket.unshift(leftover);
    // The user pipes or listens; a paused socket with 'data' listeners must flow again.
    process.nextTick(() => {
      if (!this.socket.destroyed && this.socket.listenerCount('data') > 0 && !this.socket.readableFlowing) {
        this.socket.resume();
      }
    });
  }
}

/**
 * After TLS, `detach()` returns this: the plaintext conversation as a Duplex, decrypted and
 * encrypted by the session's TLS connection, over the socket that carries the records.
 */
class TlsDetachedSocket extends Duplex {
  constructor(driver) {
    super({ allowHalfOpen: true });
    this.driver = driver;
    const socket = driver.socket;
    copyAddresses(this, socket);
    this.encrypted = true;
  }

  /** Starts the flow once the session has let go: the unprocessed plaintext first. */
  start(leftover) {
    const { socket, handle } = this.driver;
    if (leftover.length > 0) this.push(leftover);
    socket.on('data', (chunk) => {
      const plaintext = binding.sessionOpen(handle, chunk);
      if (plaintext === null) this.push(null);
      else if (plaintext.length > 0 && !this.push(plaintext)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    // A client reset must not take the process down: report it only to someone listening.
    socket.on('error', (err) => this.destroy(this.listenerCount('error') > 0 ? err : undefined));
    socket.resume();
  }

  _read() {
    if (this.driver.handedOver) this.driver.socket.resume();
  }

  _write(chunk, encoding, callback) {
    this.driver.socket.write(binding.sessionSeal(this.driver.handle, chunk), callback);
  }

  _final(callback) {
    this.driver.socket.end(binding.sessionSealClose(this.driver.handle), callback);
  }

  _destroy(err, callback) {
    this.driver.socket.destroy();
    callback(err);
  }

  setNoDelay() { return this; }
  setKeepAlive() { return this; }
  setTimeout() { return this; }
}

module.exports = { JsDriver };

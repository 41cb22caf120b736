'use strict';
// The JS-thread driver: Node reads and writes the socket; the Rust session (framing, limits,
// startup, auth, deadlines, backpressure, built-in answers) runs synchronously inside each
// event; user hooks are called directly. No thread hop per hook, which is what a
// request/response workload through `onMessage` pays for on the tokio driver.
//
// Like the tokio driver it is a thin pump: every event (bytes, EOF, a hook's answer, the timer,
// 'drain') goes to the session, which answers with a step code saying what to do next, whether
// to keep reading and whether its deadline moved.

const binding = require('./binding.js');
const { reportError, connectionProblem } = require('./report.js');
const { wants, write, writeNative } = require('./log.js');
const { Duplex } = require('node:stream');
const { offerMessages, copyAddresses } = require('./values.js');
const { callHook } = require('./hooks.js');
const { dropCursors, answerQuery } = require('./query.js');

const {
  STEP_WAIT, STEP_HOOK, STEP_SIMPLE_QUERY, STEP_QUERY, STEP_CLOSE, STEP_ABORT, STEP_NONE, STEP_MASK, HAS_OUTPUT, IS_TLS, OFFERS_FED_BYTES,
  WANTS_INPUT, TIMER_CHANGED, VERSION_SHIFT, OUTPUT_HIGH_WATER,
  QUERY_REG_MODE, QUERY_REG_CURSOR, QUERY_REG_MAX_ROWS, QUERY_REG_FLAGS, QUERY_REG_DROPPED_COUNT, QUERY_REG_DROPPED,
  QUERY_REGISTERS, QUERY_RESUME, QUERY_HAS_DETAILS,
} = binding;

/** Where `sessionQueryCall()` writes a statement's scalars (read at once, so one array serves all). */
const queryRegisters = new Uint32Array(QUERY_REGISTERS);
const QUERY_MODES = ['simple', 'describe', 'execute', 'describeExecute'];
const NO_CURSORS = Object.freeze([]);

/** A statement for `answerQuery`, always of one shape (the details are set when there are any). */
function queryEvent(sql, mode, cursor, maxRows, resume, dropped) {
  return {
    kind: 'query', sql, mode, cursor, maxRows, resume, dropped,
    params: undefined, paramTypes: undefined, resultFormats: undefined, expectedTypes: undefined,
  };
}

/**
 * Live JS-driver connections with an `onCancel` hook, by the process id of their
 * BackendKeyData. Rust's cancel registry (shared with the tokio driver) calls `cancelDispatch`
 * with the id when a CancelRequest with the right key arrives anywhere in the process.
 */
const cancelTargets = new Map();
binding.setCancelDispatch((processId) => {
  try {
    const driver = cancelTargets.get(processId);
    if (driver) driver.connection._cancelled(driver.connection.state);
  } catch {
    // Called from a threadsafe function: nothing may escape. `_cancelled` already swallows
    // what the hook throws; this covers a connection torn down meanwhile.
  }
});

/**
 * The session's answers are copied into slices of a shared pool, as Node's own Buffer pool
 * does: a Buffer made natively per answer (an allocation, its free, a backing-store sweep)
 * cost more than the rest of a small query's round trip. A slice handed out is never written
 * again; a pool that is full is dropped for a new one and lives on as long as its slices do.
 */
const OUTPUT_POOL_SIZE = 64 * 1024;
let outputPool = Buffer.allocUnsafeSlow(OUTPUT_POOL_SIZE);
let outputPoolOffset = 0;

/** What the session has to send, or undefined. */
function takeOutput(handle) {
  let length = binding.sessionTakeOutputInto(handle, outputPool, outputPoolOffset);
  if (length < 0) {
    // A big answer gets a Buffer of its own; a small one a fresh pool.
    if (-length > OUTPUT_POOL_SIZE / 8) return binding.sessionTakeOutput(handle) ?? undefined;
    outputPool = Buffer.allocUnsafeSlow(OUTPUT_POOL_SIZE);
    outputPoolOffset = 0;
    length = binding.sessionTakeOutputInto(handle, outputPool, 0);
  }
  if (length <= 0) return undefined;
  return pooled(length);
}

/** The `length` bytes the session copied into the pool at its offset, handed out. */
function pooled(length) {
  const start = outputPoolOffset;
  // Slices start 8-aligned, as Node's pool keeps them.
  outputPoolOffset = (start + length + 7) & ~7;
  return outputPool.subarray(start, start + length);
}

/** `sessionQueryRows()` adds the length of the output it copied into the pool times this. */
const TAKEN_UNIT = 2 ** 32;

/** Node timers wait at most 2^31 - 1 ms; a longer deadline is re-armed when the timer fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * After our FIN and once everything is written, how long the client has to close too before
 * the socket is destroyed (the session's CLOSE_LINGER, as on the tokio driver). Reading on
 * until then keeps the kernel from answering the client's late bytes with a reset that could
 * cut our last answer.
 */
const { LINGER_MS } = binding;

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
    /** A hook's promise is pending. */
    this.inHook = false;
    /** Inside `run()` (a synchronous hook's `detach()` waits for it to finish). */
    this.running = false;
    this.detached = false;
    this.closing = false;
    /** We paused the socket because the session wants no input now. */
    this.paused = false;
    this.waitingForDrain = false;
    /** The session has output that waits for the answer of the `onQuery` now running. */
    this.outputHeld = false;
    this.timer = null;
    // The step the session asked for last; set by every call that polls.
    this.step = STEP_NONE;
    // Whether writes must be sealed; from the step codes, so a write costs no native call.
    this.tls = false;
    this.resumeAfterHook = () => this.resume();
    // `onQuery`'s answers (made once: a query must not cost two closures).
    this.answerQueryDone = (completed, suspended, data, error) => {
      this.afterHook(binding.sessionQueryDone(this.handle, completed, suspended, data, error, this.pollAfterHook));
    };
    // `values`: a row's values passed one by one (see answerOneRow in query.js).
    this.answerQueryRows = (plan, rows, flags, complete, v0, v1, v2, v3, v4, v5, v6, v7) => {
      const result = binding.sessionQueryRows(this.handle, plan, rows, flags, complete, this.pollAfterHook,
        outputPool, outputPoolOffset, v0, v1, v2, v3, v4, v5, v6, v7);
      if (typeof result !== 'number') return result;
      const step = result >>> 0;
      // The answer, with what was held for it, is in the pool already: out it goes (unless a
      // row's getter detached the connection meanwhile: the socket has a new owner).
      if (result >= TAKEN_UNIT && !this.detached) {
        this.outputHeld = false;
        this.writeWire(pooled((result - step) / TAKEN_UNIT));
      }
      this.afterHook(step);
      return undefined;
    };
    this.failAfterHook = () => this.socket.destroy();
    // Each event handler is guarded: what throws in it (a caught Rust panic arrives as an
    // exception) ends this connection, never the process.
    this.onData = this.guarded((chunk) => this.pump(binding.sessionFeed(this.handle, chunk), chunk));
    this.onEnd = this.guarded(() => this.pump(binding.sessionReceiveEof(this.handle)));
    this.onDrain = this.guarded(() => {
      this.waitingForDrain = false;
      this.reportBacklog();
      this.pump(binding.sessionPoll(this.handle));
    });
    this.onTimer = this.guarded(() => {
      this.timer = null;
      if (this.detached || this.socket.destroyed) return;
      if (this.socket.writableLength > 0) this.reportBacklog();
      this.pump(binding.sessionHandleTimeout(this.handle));
      // A deadline further than a Node timer reaches, or one that did not change: arm again.
      if (this.timer === null && !this.detached) this.armTimer();
    });
    // A client that resets the connection must end that connection only: without an 'error'
    // listener Node would throw and take the process down (pg-gateway 0.2.4 does).
    this.onError = () => this.socket.destroy();
    this.processId = binding.sessionProcessId(this.handle);
    const options = connection.options;
    if (typeof options.onCancel === 'function' || typeof options.onQuery === 'function') cancelTargets.set(this.processId, this);
    // The `logger` option: the same lines as from the native driver (see src/server/log.rs).
    this.startedAt = performance.now();
    this.logAuthorized = wants(options, 'info');
    // Read now: once the socket has closed, Node no longer knows its peer.
    this.peer = options.logger ? { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort } : {};
    if (wants(options, 'debug')) write(options, 'debug', 'connection received', { pid: this.processId, ...this.peer });
    this.onClose = () => {
      this.stopTimer();
      // Detached or not, the connection is gone: its cancel key is free again.
      cancelTargets.delete(this.processId);
      binding.sessionRelease(this.handle);
      dropCursors(connection);
      if (options.logger) this.logLine('disconnection', this.closing ? 'closed' : 'error');
    };
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    // A socket from `pauseOnConnect` stays paused until told otherwise.
    socket.resume();
    // Arms the authentication deadline.
    this.guarded(() => this.pump(binding.sessionPoll(this.handle)))();
  }

  /** `handler`, with whatever it throws ending this connection only. */
  guarded(handler) {
    return (...args) => {
      try {
        handler(...args);
      } catch {
        this.stopTimer();
        this.socket.destroy();
      }
    };
  }

  /** The session's state snapshot (what `connection.state` is built from). */
  state() {
    return binding.sessionState(this.handle);
  }

  /** Sends protocol bytes from the user, encrypted once TLS is up. */
  write(bytes) {
    if (this.outputHeld) this.releaseOutput();
    return this.writeWire(this.tls ? binding.sessionSeal(this.handle, bytes) : bytes);
  }

  /** Writes what the session has to send. */
  releaseOutput() {
    this.outputHeld = false;
    const output = takeOutput(this.handle);
    if (output !== undefined) this.writeWire(output);
  }

  /** Sends wire bytes; when the socket holds more than it likes, the session hears of it. */
  writeWire(bytes) {
    // Ended: by us, or by Node when the client's FIN came and the server does not allow half
    // open connections. Writing then only raises ERR_STREAM_WRITE_AFTER_END.
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    const ok = this.socket.write(bytes);
    if (!ok) {
      this.reportBacklog();
      if (!this.waitingForDrain) {
        this.waitingForDrain = true;
        this.socket.once('drain', this.onDrain);
      }
    }
    return ok;
  }

  /** Tells the session what the socket has not sent yet, and how much it has sent. */
  reportBacklog() {
    const socket = this.socket;
    const unsent = socket.writableLength;
    const sent = typeof socket.bytesWritten === 'number' ? Math.max(0, socket.bytesWritten - unsent) : 0;
    binding.sessionBacklog(this.handle, unsent, sent);
  }

  /** For `onQuery` results: whether the socket holds no more than the session's mark. */
  writeQueryOutput(bytes) {
    this.write(bytes);
    return !this.socket.destroyed && this.socket.writableLength <= OUTPUT_HIGH_WATER;
  }

  /** Resolves when the socket has sent what it holds, or is gone. */
  whenWritable() {
    const socket = this.socket;
    if (socket.destroyed || socket.writableLength <= OUTPUT_HIGH_WATER) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  /** For `offerMessages`: what is unsent once it is above the mark, so the batch stops there. */
  backedUp() {
    const unsent = this.socket.writableLength;
    return unsent > OUTPUT_HIGH_WATER ? unsent : undefined;
  }

  /** Runs the session until it waits, closes, or waits for an async hook. */
  pump(step, fed) {
    if (this.detached) return;
    // Everything written while the session runs synchronously (its own replies and the
    // hooks' sendData) leaves in one writev, as the tokio driver's single buffer does.
    this.socket.cork();
    this.running = true;
    try {
      this.run(step, fed);
    } finally {
      this.running = false;
      this.socket.uncork();
    }
  }

  /**
   * The pump's loop: `step` is what the session asked for last; `fed` the chunk `feed()` took,
   * which is what `onMessage` gets when the step says the offer is exactly those bytes.
   */
  run(step, fed) {
    for (;;) {
      if (this.logAuthorized && this.logLine('authorized')) this.logAuthorized = false;
      if (step & IS_TLS) this.tls = true;
      const kind = step & STEP_MASK;
      if (step & HAS_OUTPUT) {
        // Before `onQuery` (ParseComplete, BindComplete ...): held, to leave with the answer
        // in one piece, unless something is written first.
        if (kind === STEP_QUERY) this.outputHeld = true;
        else this.releaseOutput();
      }
      if (step & TIMER_CHANGED) this.armTimer();
      if (kind === STEP_WAIT) return this.setReading((step & WANTS_INPUT) !== 0);
      if (kind === STEP_CLOSE || kind === STEP_ABORT) {
        const problem = binding.sessionTakeProblem(this.handle);
        if (problem) reportError(this.connection, connectionProblem(problem));
        if (!this.closing && wants(this.connection.options, 'warn')) this.logLine('fatal');
        return kind === STEP_CLOSE ? this.close() : this.abort();
      }
      let pending;
      if (kind === STEP_SIMPLE_QUERY) {
        // Only from sessionFeed(): the Query is the bytes fed.
        pending = this.runSimpleQuery(fed.toString('utf8', 5, fed.length - 1), step >>> VERSION_SHIFT);
      }
      else if (kind === STEP_QUERY) pending = this.runQuery(step >>> VERSION_SHIFT);
      else if (kind !== STEP_HOOK) return undefined; // STEP_NONE: detached meanwhile
      else if (step & OFFERS_FED_BYTES) pending = this.offer(fed, step >>> VERSION_SHIFT);
      else pending = this.runHook(step >>> VERSION_SHIFT);
      if (pending) {
        // What the session answered before this statement (earlier statements' results,
        // ParseComplete ...) does not wait for a hook that takes its time.
        if (this.outputHeld) this.releaseOutput();
        // The session keeps taking bytes (up to its read-ahead) and EOF while the hook runs.
        this.inHook = true;
        // resume() throwing must cost this connection only, never an unhandled rejection.
        pending.then(this.resumeAfterHook).catch(this.failAfterHook);
        return this.setReading((step & WANTS_INPUT) !== 0);
      }
      if (this.detached) return this.finishDetach();
      step = this.step; // the hook's done-call polled already
    }
  }

  resume() {
    this.inHook = false;
    if (this.detached) return this.finishDetach();
    const step = this.step;
    // How an async onMessage usually ends (PGlite): the session only wants more input, and
    // the socket is flowing already: nothing to pump.
    if ((step & (STEP_MASK | HAS_OUTPUT | TIMER_CHANGED | WANTS_INPUT)) === (STEP_WAIT | WANTS_INPUT) && !this.paused) return undefined;
    return this.pump(step);
  }

  /** Pauses or resumes the socket as the session wants input or not. */
  setReading(wanted) {
    if (wanted === !this.paused) return;
    this.paused = !wanted;
    if (wanted) this.socket.resume();
    else this.socket.pause();
  }

  armTimer() {
    this.stopTimer();
    const ms = binding.sessionTimeout(this.handle);
    if (ms < 0) return;
    this.timer = setTimeout(this.onTimer, Math.min(ms, MAX_TIMER_MS));
    // A connection's deadline does not keep the process alive; its socket does.
    this.timer.unref?.();
  }

  stopTimer() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /**
   * Logs the session's line `what` (see `sessionLogLine`) if it has one; true if it did.
   * `fallback` is the reason of a disconnection the session did not decide (a socket error).
   */
  logLine(what, fallback) {
    const line = binding.sessionLogLine(this.handle, what, fallback);
    if (!line) return false;
    const options = this.connection.options;
    if (!wants(options, line.level)) return true;
    if (what !== 'disconnection') {
      writeNative(options, { ...line, ...this.peer });
      return true;
    }
    writeNative(options, {
      ...line,
      ...this.peer,
      durationMs: Math.round((performance.now() - this.startedAt) * 1000) / 1000,
      bytesReceived: this.socket.bytesRead,
      bytesSent: this.socket.bytesWritten,
    });
    return true;
  }

  /** The session ended: FIN once the output is out, then a short linger for the client's. */
  close() {
    // Keep reading: the session drops what comes now, and the client's FIN must be seen.
    this.setReading(true);
    if (this.closing) return;
    this.closing = true;
    const socket = this.socket;
    socket.end();
    socket.once('finish', () => {
      const linger = setTimeout(() => socket.destroy(), LINGER_MS);
      linger.unref?.();
      socket.once('close', () => clearTimeout(linger));
    });
  }

  /** The session ended without sending what is pending (a deadline passed). */
  abort() {
    this.stopTimer();
    this.socket.destroy();
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

  /** `onQuery` for a simple Query; returns a promise only if it did not finish at once. */
  runSimpleQuery(sql, stateVersion) {
    const event = queryEvent(sql, 'simple', 0, 0, false, NO_CURSORS);
    const connection = this.connection;
    return answerQuery(connection, event, connection._stateFor(stateVersion), this.answerQueryDone, this.answerQueryRows);
  }

  /** `onQuery` for a portal's statement (or a simple Query that lets go of portals). */
  runQuery(stateVersion) {
    const handle = this.handle;
    const registers = queryRegisters;
    const sql = binding.sessionQueryCall(handle, registers);
    // The step said a statement waits: without one the pump would spin. Ends this connection.
    if (sql === null) throw new Error('pg-gateway-native: STEP_QUERY without a statement');
    const flags = registers[QUERY_REG_FLAGS];
    const droppedCount = registers[QUERY_REG_DROPPED_COUNT];
    let dropped = NO_CURSORS;
    if (droppedCount > 0) {
      dropped = new Array(droppedCount);
      for (let i = 0; i < droppedCount; i++) dropped[i] = registers[QUERY_REG_DROPPED + i];
    }
    const mode = QUERY_MODES[registers[QUERY_REG_MODE]];
    const event = queryEvent(sql, mode, registers[QUERY_REG_CURSOR], registers[QUERY_REG_MAX_ROWS], (flags & QUERY_RESUME) !== 0, dropped);
    if (flags & QUERY_HAS_DETAILS) {
      const details = binding.sessionQueryDetails(handle);
      event.params = details.params;
      event.paramTypes = details.paramTypes;
      event.resultFormats = details.resultFormats;
      event.expectedTypes = details.expectedTypes;
      if (details.dropped) event.dropped = details.dropped;
    }
    const connection = this.connection;
    return answerQuery(connection, event, connection._stateFor(stateVersion), this.answerQueryDone, this.answerQueryRows);
  }

  /** Calls the hook the session asked for; returns a promise only if the hook is async. */
  runHook(stateVersion) {
    const handle = this.handle;
    const messages = binding.sessionTakeMessages(handle);
    if (messages !== null) return this.offer(messages, stateVersion);
    const event = binding.sessionHook(handle);
    const connection = this.connection;
    return callHook(connection, event, connection._stateFor(event.stateVersion), (reply) => {
      this.afterHook(binding.sessionHookDone(handle, reply, this.pollAfterHook));
    });
  }

  /** Offers the messages in `data` to `onMessage` (see `offerMessages`). */
  offer(data, stateVersion) {
    const connection = this.connection;
    return offerMessages(connection.options.onMessage, data, 0, 0, connection._stateFor(stateVersion), connection, this);
  }

  /** `offerMessages`' outcome: `count` messages handled, then the session goes on. */
  messagesDone(count, error, backlog) {
    this.afterHook(binding.sessionMessagesDone(this.handle, count, error, this.pollAfterHook, backlog));
  }

  /**
   * `detach()` was called: stop listening and hand back what was read but not processed.
   * Returns what the user gets: the socket itself, or, after TLS, a Duplex that decrypts it.
   */
  requestDetach() {
    // What the session answered before the hook that detaches (ParseComplete ...) goes before
    // whatever the new owner of the socket writes.
    if (this.outputHeld) this.releaseOutput();
    this.detached = true;
    this.stopTimer();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('drain', this.onDrain);
    this.socket.pause();
    this.paused = false;
    if (binding.sessionIsTls(this.handle)) this.tlsStream = new TlsDetachedSocket(this);
    // Outside a hook, nothing is in flight: hand over now. Inside one, after it has answered.
    if (!this.inHook && !this.running) this.finishDetach();
    return this.tlsStream ?? this.socket;
  }

  finishDetach() {
    if (this.handedOver) return;
    this.handedOver = true;
    const leftover = binding.sessionDetach(this.handle);
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
    const socket = this.driver.socket;
    // The socket's write side is gone (Node ends it when the client's FIN comes, unless the
    // server allows half open connections): what is left cannot reach the client. Writing
    // anyway raised ERR_STREAM_WRITE_AFTER_END on both streams for every `pgbench -C` client.
    if (socket.writableEnded || socket.destroyed) return callback();
    socket.write(binding.sessionSeal(this.driver.handle, chunk), callback);
  }

  _final(callback) {
    const socket = this.driver.socket;
    if (socket.writableEnded || socket.destroyed) return callback();
    socket.end(binding.sessionSealClose(this.driver.handle), callback);
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

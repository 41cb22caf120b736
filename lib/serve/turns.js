'use strict';
// Who may talk to PGlite now. PGlite is one PostgreSQL session; a client owns it from its first
// message until PGlite's ReadyForQuery says idle outside a transaction, so batches and
// transactions of different clients never interleave. The others wait in a bounded queue.

class WaitError extends Error {
  constructor(fields) {
    super(fields.M);
    this.fields = fields;
  }
}

class Turns {
  /**
   * `queueTimeout`: how long a client may wait for its turn (0: forever); `maxWaiting`: how
   * many may wait at once (a bound, not a policy: at most one per connection anyway).
   */
  constructor({ queueTimeout, maxWaiting }) {
    this.queueTimeout = queueTimeout;
    this.maxWaiting = maxWaiting;
    this.owner = null;
    this.waiting = [];
  }

  /** Resolves once `client` owns PGlite; rejects with a WaitError on timeout or cancel. */
  acquire(client) {
    if (this.owner === client) return Promise.resolve();
    if (this.owner === null && this.waiting.length === 0) {
      this.owner = client;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(new WaitError({ S: 'ERROR', V: 'ERROR', C: '53300', M: 'too many clients are waiting for the database' }));
    }
    return new Promise((resolve, reject) => {
      const entry = { client, resolve, reject, timer: null };
      if (this.queueTimeout > 0) {
        entry.timer = setTimeout(() => {
          this._remove(entry);
          reject(new WaitError({
            S: 'ERROR',
            V: 'ERROR',
            C: '55P03',
            M: 'canceling statement due to lock timeout',
            D: `PGlite runs one client at a time, and another client held it for longer than ${this.queueTimeout} ms.`,
            H: 'Keep transactions short, or raise --queue-timeout.',
          }));
        }, this.queueTimeout);
      }
      this.waiting.push(entry);
    });
  }

  /** `client` gives PGlite up; the next waiting client gets it. */
  release(client) {
    if (this.owner !== client) return;
    this.owner = null;
    const next = this.waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      this.owner = next.client;
      next.resolve();
    }
  }

  /** Ends `client`'s wait with `fields` as its error (a cancel, or the client left). */
  abandon(client, fields) {
    const entry = this.waiting.find((e) => e.client === client);
    if (!entry) return false;
    this._remove(entry);
    entry.reject(new WaitError(fields));
    return true;
  }

  isWaiting(client) {
    return this.waiting.some((e) => e.client === client);
  }

  _remove(entry) {
    clearTimeout(entry.timer);
    const i = this.waiting.indexOf(entry);
    if (i >= 0) this.waiting.splice(i, 1);
  }
}

module.exports = { Turns, WaitError };

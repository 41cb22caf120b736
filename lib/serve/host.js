'use strict';
// One PGlite shared by every client of `serve`: raw protocol calls in order, the turns, the
// session settings of whoever owns the turn, and notifications for the clients that listen.

const wire = require('./wire.js');
const { Turns } = require('./turns.js');
const { transition, READ_SETTINGS } = require('./settings.js');

class PgliteHost {
  /**
   * `db`: a ready PGlite. `log`: the serve logger. `queueTimeout`, `maxWaiting`: see Turns.
   */
  constructor(db, { log, queueTimeout, maxWaiting }) {
    this.db = db;
    this.log = log;
    this.turns = new Turns({ queueTimeout, maxWaiting });
    /** The settings PGlite's session has now (null until read). */
    this.applied = null;
    /** Listening clients by channel. */
    this.listeners = new Map();
    /** PGlite broke: nothing more is sent to it. */
    this.broken = null;
    /** Raw calls sent and not yet answered. */
    this.inFlight = 0;
    /** Every connected client. */
    this.clients = new Set();
  }

  /**
   * Starts: a StartupMessage first, without which PGlite never reports a setting's change
   * (ParameterStatus; its startup parameters it ignores), then its own session settings, the
   * baseline of every client's (that answer also takes the reports PGlite holds back once).
   */
  async start() {
    await this.raw(wire.startup({ user: 'postgres', database: 'postgres' }));
    const { rows, error } = wire.textRows(await this.raw(wire.query(READ_SETTINGS)));
    if (error) throw new Error(`PGlite: ${error.M}`);
    this.applied = new Map(rows);
    return this.applied;
  }

  /** One raw protocol call, in order with every other. */
  async raw(request) {
    if (this.broken) throw this.broken;
    const db = this.db;
    this.inFlight += 1;
    try {
      // The streaming call, because the others parse every answer into objects and keep them
      // until the next db.query() (a third of the CPU per statement, and a heap that grows).
      // Its chunks are views into PGlite's memory: copied as they come.
      const chunks = [];
      await db.runExclusive(() => db.execProtocolRawStream(request, { onRawData: (chunk) => chunks.push(Buffer.from(chunk)) }));
      return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    } catch (err) {
      this.broken = err instanceof Error ? err : new Error(require('node:util').inspect(err, { depth: 2 }));
      throw this.broken;
    } finally {
      this.inFlight -= 1;
    }
  }

  /**
   * Before `client`'s turn: PGlite's session gets its settings. Returns the settings PGlite
   * reported changed ([name, value] pairs), or null; throws the ErrorResponse fields when a
   * setting is refused (an unknown startup parameter).
   */
  async enter(client) {
    // Nothing changed since this client's own last turn.
    if (this.appliedFor === client && client.settings === this.appliedSettings) return null;
    const sql = transition(this.applied, client.settings);
    this.appliedFor = client;
    this.appliedSettings = client.settings;
    if (sql === null) return null;
    const answer = await this.raw(wire.query(sql));
    const scan = wire.scanResponse(answer);
    const { error } = wire.textRows(answer);
    if (error) {
      // Whatever did apply before the failing statement is read back.
      await this.readSettings(null);
      throw error;
    }
    this.applied = new Map(client.settings);
    return scan.parameters;
  }

  /** After a turn that may have changed settings: `client`'s settings are what PGlite has. */
  async readSettings(client) {
    const { rows, error } = wire.textRows(await this.raw(wire.query(READ_SETTINGS)));
    if (error) return;
    this.applied = new Map(rows);
    if (!client) {
      this.appliedFor = null;
      return;
    }
    client.settings = new Map(this.applied);
    this.appliedFor = client;
    this.appliedSettings = client.settings;
    // RESET ALL, DISCARD ALL and SET SESSION AUTHORIZATION DEFAULT bring PGlite's session back
    // to the user it started as (postgres); on PostgreSQL they bring it back to the user who
    // logged in. The client's session is brought back to it at its next turn.
    if (client.user && client.user !== 'postgres' && this.applied.get('session_authorization') === 'postgres') {
      client.settings.set('session_authorization', client.user);
      client.settings.set('role', 'none');
      this.appliedFor = null;
    }
  }

  /**
   * After `client` dropped what PGlite's one session holds for everyone: every other client's
   * prepared statements are parsed again, each under its own client's settings (its
   * search_path decides which tables its names mean, for good), and PGlite listens again on
   * every channel that someone still listens on. PGlite's settings end as they were.
   */
  async restore(client, { statements, listens }) {
    const parts = [];
    const others = statements ? [...this.clients].filter((other) => other !== client && other.statements.size > 0) : [];
    if (others.length > 0) {
      const { rows, error } = wire.textRows(await this.raw(wire.query(READ_SETTINGS)));
      const before = error ? this.applied : new Map(rows);
      let current = before;
      for (const other of others) {
        const settings = transition(current, other.settings);
        if (settings !== null) parts.push(wire.query(settings));
        current = other.settings;
        // A Sync after each: one that fails (its table is gone) must not take the others along.
        for (const parse of other.statements.values()) parts.push(parse, wire.SYNC);
      }
      const back = transition(current, before);
      if (back !== null) parts.push(wire.query(back));
    }
    if (listens) {
      // One Query each, for the same reason.
      for (const name of this.listeners.keys()) {
        if (name !== '') parts.push(wire.query(`LISTEN ${wire.identifier(name)}`));
      }
    }
    if (parts.length > 0) await this.raw(Buffer.concat(parts));
  }

  listen(client, channel) {
    let set = this.listeners.get(channel);
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(client);
  }

  unlisten(client, channel) {
    if (channel === null) {
      for (const [name, set] of this.listeners) {
        set.delete(client);
        if (set.size === 0) this.listeners.delete(name);
      }
      return;
    }
    const set = this.listeners.get(channel);
    set?.delete(client);
    if (set?.size === 0) this.listeners.delete(channel);
  }

  isListened(channel) {
    return this.listeners.has(channel);
  }

  /** A notification PGlite sent: to every client listening on its channel. */
  notify(notification, raw) {
    for (const client of this.listeners.get(notification.channel) ?? []) client.notify(raw);
  }
}

module.exports = { PgliteHost };

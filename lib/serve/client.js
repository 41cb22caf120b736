'use strict';
// One client of `serve`: its messages go to PGlite during its turns, with its prepared
// statements renamed into a namespace of its own and its settings applied; PGlite's answers come
// back with the names restored.

const wire = require('./wire.js');
const { WaitError } = require('./turns.js');
const { initialSettings, maySet, READ_REPORTED } = require('./settings.js');

/** Extended-protocol messages, held until the Sync or Flush that ends their batch. */
const BATCHED = new Set([0x50, 0x42, 0x44, 0x45, 0x43]);
/** A batch (or COPY data) beyond this is refused: the client is not following the protocol. */
const MAX_BATCH = 256 * 1024 * 1024;
/** A simple-query COPY that reads from the client. */
const COPY_FROM_STDIN = /^\s*copy\b[\s\S]*\bfrom\s+stdin\b/i;
const COPY_BINARY = /\bbinary\b/i;
/** SERVE_TRACE=1 logs each request and answer by message types (read once: process.env is slow). */
const TRACE = Boolean(process.env.SERVE_TRACE);
/** LISTEN statements, wherever they are in a Query (`unlisten` has no word break before `listen`). */
const LISTEN = /\blisten\s+("(?:[^"]|"")+"|[^\s;]+)/gi;
const UNLISTEN = /^\s*unlisten\s+(\*|"(?:[^"]|"")+"|[^\s;]+)\s*;?\s*$/i;
/** Statements that act on the whole PGlite session where PostgreSQL's act on one client's. */
const DROPS_STATEMENTS = /\b(deallocate\s+(prepare\s+)?all|discard\s+all)\b/i;
const DROPS_LISTENS = /\b(unlisten|discard\s+all)\b/i;
const UNLISTEN_ANYWHERE = /\bunlisten\s+(\*|"(?:[^"]|"")+"|[^\s;]+)/gi;
/**
 * Every statement the patterns above look for has one of these words: most statements pass
 * this one test and none of the others (they run for each Query and Parse).
 */
const MAY_DROP_OR_LISTEN = /listen|discard|deallocate/i;

function channelName(token) {
  if (token.startsWith('"')) return token.slice(1, -1).replace(/""/g, '"');
  return token.toLowerCase();
}

class ServeClient {
  constructor(host, connection, id, { idleInTransactionTimeout, log, reported }) {
    this.host = host;
    host.clients.add(this);
    this.connection = connection;
    this.id = id;
    this.prefix = `pgn${id}_`;
    this.rename = (name) => this.prefix + name;
    this.log = log;
    this.idleInTransactionTimeout = idleInTransactionTimeout;
    this.settings = null;
    /** The ParameterStatus values this client was last told, by name. */
    this.reported = new Map(Object.entries(reported ?? {}));
    /** This client's prepared statements: its name -> the (renamed) Parse that made it. */
    this.statements = new Map();
    /** Statements parsed in the batch being sent, not yet run. */
    this.parsing = new Map();
    /** This turn ran something that dropped other clients' statements or listens in PGlite. */
    this.dropped = null;
    /** What the statements about to run take from this client itself (see readStatement). */
    this.losses = [];
    this.pending = [];
    this.pendingBytes = 0;
    /** What PGlite's last ReadyForQuery said for this client. */
    this.status = 'idle';
    /** A statement of this turn may have changed a setting. */
    this.touchedSettings = false;
    this.idleTimer = null;
    this.closed = false;
    this.listening = new Set();
    /** A COPY FROM STDIN in progress: its Query and the client's data so far. */
    this.copyIn = null;
  }

  /** After authentication: the client's settings start from PGlite's and its startup parameters. */
  start(state) {
    const parameters = state.clientInfo?.parameters ?? {};
    this.user = parameters.user;
    this.settings = initialSettings(this.host.applied, parameters);
    // What the gateway reported at startup besides serverParameters: these are the client's.
    this.reported.set('session_authorization', this.user ?? '');
    this.reported.set('application_name', parameters.application_name ?? '');
  }

  /** `onMessage` after authentication: true when handled (all but Terminate). */
  async message(data) {
    const type = data[0];
    if (type === 0x58) return false;
    this.clearIdleTimer();
    if (this.copyIn !== null) return this.copyMessage(data);
    // CopyData, CopyDone and CopyFail outside a COPY are ignored, as PostgreSQL ignores them
    // (PGlite would answer nothing, which reads as a batch that goes on and keeps the turn).
    if (type === 0x64 || type === 0x63 || type === 0x66) return true;
    if (BATCHED.has(type)) {
      const { data: renamed, parsed, bound, closed } = wire.renameStatement(data, this.rename);
      // A prepared SET run again (a Bind with no Parse) changes the settings again.
      if (bound && !this.touchedSettings) {
        const parse = this.parsing.get(bound) ?? this.statements.get(bound);
        if (parse !== undefined && maySet(wire.sqlOf(parse))) this.touchedSettings = true;
      }
      // Known once its batch has run: until then another client's reset must not make it.
      if (parsed) this.parsing.set(parsed, renamed);
      if (closed) {
        this.statements.delete(closed);
        this.parsing.delete(closed);
      }
      if (type === 0x50) {
        const sql = wire.sqlOf(data);
        this.readStatement(sql, MAY_DROP_OR_LISTEN.test(sql));
      }
      this.pending.push(renamed);
      this.pendingBytes += renamed.length;
      if (this.pendingBytes > MAX_BATCH) {
        this.fatal({ C: '54000', M: 'extended-protocol batch too large', D: `More than ${MAX_BATCH} bytes arrived without a Sync.` });
      }
      return true;
    }
    if (type === 0x51) {
      const sql = wire.sqlOf(data);
      const notable = MAY_DROP_OR_LISTEN.test(sql);
      if (notable && this.answerUnlisten(sql)) return true;
      this.readStatement(sql, notable);
      if (this.pending.length === 0 && COPY_FROM_STDIN.test(sql)) return this.startCopyIn(data, sql);
      if (notable) {
        for (const listen of sql.matchAll(LISTEN)) {
          const channel = channelName(listen[1]);
          if (channel === '') continue;
          this.host.listen(this, channel);
          this.listening.add(channel);
        }
      }
    }
    const request = this.pending.length > 0 ? Buffer.concat([...this.pending.splice(0), data]) : data;
    this.pendingBytes = 0;
    await this.run(request);
    for (const [name, parse] of this.parsing) this.statements.set(name, parse);
    this.parsing.clear();
    return true;
  }

  /**
   * Notes what a statement about to run may change beyond its own results (`notable`: it has
   * one of the words of MAY_DROP_OR_LISTEN).
   */
  readStatement(sql, notable) {
    if (maySet(sql)) this.touchedSettings = true;
    if (!notable) return;
    const statements = DROPS_STATEMENTS.test(sql);
    const listens = DROPS_LISTENS.test(sql);
    if (!statements && !listens) return;
    this.dropped = { statements: statements || this.dropped?.statements, listens: listens || this.dropped?.listens };
    // What this client loses, once PGlite has run it (a statement refused in the queue, 55P03
    // or 57014, drops nothing).
    const unlisten = [];
    if (/\bdiscard\s+all\b/i.test(sql)) unlisten.push(null);
    for (const match of sql.matchAll(UNLISTEN_ANYWHERE)) unlisten.push(match[1] === '*' ? null : channelName(match[1]));
    this.losses.push({ statements, unlisten });
  }

  /** PGlite ran what `readStatement` noted: this client's statements and listens go. */
  applyLosses() {
    for (const { statements, unlisten } of this.losses.splice(0)) {
      if (statements) this.statements.clear();
      for (const channel of unlisten) this.stopListening(channel);
    }
  }

  stopListening(channel) {
    this.host.unlisten(this, channel);
    if (channel === null) this.listening.clear();
    else this.listening.delete(channel);
  }

  /**
   * COPY FROM STDIN. PGlite cannot wait for data in the middle of a call (a COPY Query alone
   * kills it), so the gateway asks the client for the data itself and hands PGlite the Query,
   * the data and its end in one call, as PostgreSQL would have received them.
   */
  startCopyIn(data, sql) {
    this.copyIn = { parts: [data], bytes: data.length };
    const binary = COPY_BINARY.test(sql) ? 1 : 0;
    // CopyInResponse: the overall format and no per-column formats (PGlite's own answer, with
    // them, is not sent: it comes after the data).
    this.connection.sendData(wire.message(0x47, Buffer.from([binary, 0, 0])));
    return true;
  }

  async copyMessage(data) {
    const type = data[0];
    const copy = this.copyIn;
    if (type === 0x48 || type === 0x53) return true; // Flush and Sync mean nothing during COPY IN
    if (type !== 0x64 && type !== 0x63 && type !== 0x66) {
      // Anything else ends the COPY with an error, as in PostgreSQL; PGlite sees a CopyFail.
      copy.parts.push(wire.message(0x66, Buffer.from(`unexpected message type 0x${type.toString(16)} during COPY from stdin\0`)));
      this.copyIn = null;
      await this.runCopy(copy.parts);
      return true;
    }
    copy.parts.push(data);
    copy.bytes += data.length;
    if (copy.bytes > MAX_BATCH) {
      this.copyIn = null;
      this.fatal({ C: '54000', M: 'COPY data too large', D: `serve holds COPY FROM STDIN data in memory, up to ${MAX_BATCH} bytes.` });
      return true;
    }
    if (type === 0x64) return true;
    this.copyIn = null;
    await this.runCopy(copy.parts);
    return true;
  }

  async runCopy(parts) {
    await this.run(Buffer.concat(parts), (answer) => {
      // PGlite's CopyInResponse was already answered by the gateway.
      const ranges = [];
      wire.forEachMessage(answer, (type, start, end) => {
        if (type === 0x47) ranges.push({ start, end });
      });
      return wire.splice(answer, ranges, () => null);
    });
  }

  /** UNLISTEN stops this client's notifications only: PGlite keeps listening for the others. */
  answerUnlisten(sql) {
    const match = UNLISTEN.exec(sql);
    if (!match) return false;
    this.stopListening(match[1] === '*' ? null : channelName(match[1]));
    this.connection.sendData(Buffer.concat([
      wire.message(0x43, Buffer.from('UNLISTEN\0')),
      wire.message(0x5a, Buffer.from(this.status === 'idle' ? 'I' : this.status === 'transaction' ? 'T' : 'E')),
    ]));
    return true;
  }

  /** Sends `request` to PGlite in this client's turn and its answer to the client. */
  async run(request, adjust) {
    const host = this.host;
    if (this.canInterlude(request)) return this.interlude(request);
    let prelude = null;
    try {
      const owner = host.turns.owner;
      if (owner !== null && owner !== this) this.log.debug(`client ${this.id}: waits for client ${owner.id}`);
      await host.turns.acquire(this);
      prelude = await host.enter(this);
      if (!this.greeted) {
        // The first turn: PostgreSQL would have reported this client's own values at startup
        // (its application_name, is_superuser, ...); the gateway reported PGlite's.
        this.greeted = true;
        const { rows } = wire.textRows(await host.raw(wire.query(READ_REPORTED)));
        prelude = [...(prelude ?? []), ...rows];
      }
    } catch (err) {
      if (err instanceof WaitError) {
        this.losses.length = 0;
        this.dropped = null;
        return this.refuse(err.fields, request);
      }
      if (host.broken) return this.pgliteFailed(err);
      // A setting PGlite refused: a startup parameter it does not know, or a user that is no
      // role, as PostgreSQL at startup (which says 28000 for the latter).
      const noRole = /^role ".*" does not exist$/.test(err.M ?? '');
      return this.fatal({ ...err, S: 'FATAL', V: 'FATAL', ...(noRole ? { C: '28000' } : {}) });
    }
    // The client left while it waited: end() rolls back and gives the turn up.
    if (this.closed) return;
    let answer;
    try {
      answer = await host.raw(request);
    } catch (err) {
      return this.pgliteFailed(err);
    }
    this.applyLosses();
    if (this.closed) return;
    if (adjust) answer = adjust(answer);
    const scan = wire.scanResponse(answer);
    if (TRACE) this.log.debug(`client ${this.id}: ${types(request)} -> ${types(answer)}`);
    answer = this.restoreNames(answer, scan);
    if (prelude) {
      // Bringing PGlite to this client's settings reports those of them that differ from the
      // previous client's; the client hears of those it has not been told yet (its startup
      // parameters, at its first turn).
      const news = [...new Map(prelude)].filter(([name, value]) => this.reported.get(name) !== value);
      for (const [name, value] of news) this.reported.set(name, value);
      if (news.length > 0) this.connection.sendData(Buffer.concat(news.map(([name, value]) => wire.parameterStatus(name, value))));
    }
    if (scan.parameters) for (const [name, value] of scan.parameters) this.reported.set(name, value);
    this.connection.sendData(answer);
    if (scan.status !== null) this.status = scan.status;
    this.midBatch = scan.status === null;
    if (scan.status === null) {
      // A Flush: the batch goes on, and the turn with it; a client that stops here blocks the
      // others as one idle in a transaction does, and meets the same timeout.
      this.startIdleTimer();
      return;
    }
    if (this.dropped && this.status === 'idle') {
      // DEALLOCATE ALL, DISCARD ALL or UNLISTEN: PGlite's one session lost every client's
      // statements or listens. The others' are made again before anyone else runs.
      const dropped = this.dropped;
      this.dropped = null;
      await host.restore(this, dropped).catch((err) => this.log.error(`restoring after client ${this.id}: ${err?.message ?? err}`));
    }
    if (this.touchedSettings && this.status === 'idle') {
      this.touchedSettings = false;
      await host.readSettings(this).catch(() => {});
    }
    if (this.status === 'idle') {
      host.turns.release(this);
    } else {
      this.startIdleTimer();
    }
  }

  /**
   * Whether `request` may run while another client owns PGlite: it only prepares, describes or
   * closes statements (a driver preparing its statements one blocking call at a time, as
   * pgbench -M prepared does, would otherwise wait for a client its own thread holds up), the
   * owner sits idle inside a healthy transaction, and both have the same settings (names
   * resolve by search_path).
   */
  canInterlude(request) {
    const owner = this.host.turns.owner;
    if (owner === null || owner === this || owner.status !== 'transaction' || owner.midBatch || this.host.inFlight > 0) return false;
    if (!sameSettings(this.host.applied, this.settings)) return false;
    let last = 0;
    let statementsOnly = true;
    wire.forEachMessage(request, (type, start) => {
      last = type;
      const statementLevel = type === 0x50 || ((type === 0x44 || type === 0x43) && request[start + 5] === 0x53);
      if (!statementLevel && type !== 0x53) statementsOnly = false;
    });
    return statementsOnly && last === 0x53;
  }

  /**
   * Runs a statement-only batch inside the owner's transaction, under a savepoint that is rolled
   * back whatever happens, so the owner's transaction is as it was (prepared statements are not
   * transactional: they stay). One call, so nothing of the owner's runs in between.
   */
  async interlude(request) {
    // Only statements are prepared, described or closed here: nothing runs that could drop.
    this.losses.length = 0;
    let answer;
    try {
      answer = await this.host.raw(Buffer.concat([
        wire.query('SAVEPOINT pgn_interlude'),
        request,
        wire.query('ROLLBACK TO SAVEPOINT pgn_interlude; RELEASE SAVEPOINT pgn_interlude'),
      ]));
    } catch (err) {
      return this.pgliteFailed(err);
    }
    if (this.closed) return;
    // The client's part: from after the SAVEPOINT's ReadyForQuery to its own Sync's.
    const ends = [];
    wire.forEachMessage(answer, (type, start, end) => {
      if (type === 0x5a) ends.push(end);
    });
    if (ends.length < 2) return this.pgliteFailed(new Error('unexpected answer to a statement batch'));
    const mine = Buffer.from(answer.subarray(ends[0], ends[1]));
    mine[mine.length - 1] = 0x49; // this client is idle: it holds no transaction
    const scan = wire.scanResponse(mine);
    if (TRACE) this.log.debug(`client ${this.id}: ${types(request)} -> ${types(mine)} (interlude)`);
    this.connection.sendData(this.restoreNames(mine, scan));
  }

  /**
   * PGlite's answer with this client's statement names as it wrote them (error messages name
   * the statement), and notifications for other listeners taken out and sent to them.
   */
  restoreNames(answer, scan) {
    const ranges = [];
    if (scan.errors && (this.statements.size > 0 || this.parsing.size > 0)) {
      for (const range of scan.errors) ranges.push({ ...range, kind: 'error' });
    }
    if (scan.notifications) {
      for (const n of scan.notifications) {
        // One copy for every listener: the answer itself is spliced below.
        const raw = Buffer.from(answer.subarray(n.start, n.end));
        for (const client of this.host.listeners.get(n.channel) ?? []) {
          if (client !== this) client.notify(raw);
        }
        // The notifying client sees its own only if it listens, as from PostgreSQL.
        if (!this.listening.has(n.channel)) ranges.push({ start: n.start, end: n.end, kind: 'drop' });
      }
    }
    if (ranges.length === 0) return answer;
    ranges.sort((a, b) => a.start - b.start);
    const quoted = `"${this.prefix}`;
    return wire.splice(answer, ranges, (range) => {
      if (range.kind === 'drop') return null;
      const fields = wire.errorFields(answer, range.start + 5, range.end);
      for (const code of ['M', 'D', 'H']) {
        if (fields[code] !== undefined) fields[code] = fields[code].split(quoted).join('"');
      }
      return wire.errorMessage(fields);
    });
  }

  /** A notification for a channel this client listens on. */
  notify(raw) {
    if (!this.closed) this.connection.sendData(raw);
  }

  /** The client's turn never came (timeout, cancel): its request fails, the session goes on. */
  refuse(fields, request) {
    if (this.closed) return;
    // A Flush expects no ReadyForQuery; everything else ends with one.
    let last = 0;
    wire.forEachMessage(request, (type) => { last = type; });
    const out = [wire.errorMessage(fields)];
    if (last !== 0x48) out.push(wire.message(0x5a, Buffer.from('I')));
    this.connection.sendData(Buffer.concat(out));
  }

  fatal(fields) {
    if (this.closed) return;
    this.connection.sendData(wire.errorMessage({ S: 'FATAL', V: 'FATAL', C: 'XX000', M: 'internal error', ...fields }));
    this.connection.socket.end();
  }

  pgliteFailed(err) {
    this.log.error(`PGlite failed: ${err?.message ?? require('node:util').inspect(err)}`);
    this.fatal({ C: 'XX000', M: `PGlite failed: ${err?.message ?? err}` });
    this.host.onBroken?.(err);
  }

  startIdleTimer() {
    if (!(this.idleInTransactionTimeout > 0)) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      this.log.info(`client ${this.id}: idle in transaction for ${this.idleInTransactionTimeout} ms, disconnected`);
      this.fatal({ C: '25P03', M: 'terminating connection due to idle-in-transaction timeout' });
    }, this.idleInTransactionTimeout);
  }

  clearIdleTimer() {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** A cancel for this client: a queued request is dropped; PGlite cannot stop a running one. */
  cancel() {
    return this.host.turns.abandon(this, { S: 'ERROR', V: 'ERROR', C: '57014', M: 'canceling statement due to user request' });
  }

  /**
   * The client left. Its transaction is rolled back and its statements closed (in a turn of
   * its own if it held none), and then the next client goes.
   */
  async end() {
    if (this.closed && this.ended) return;
    this.closed = true;
    this.ended = true;
    this.clearIdleTimer();
    const host = this.host;
    host.unlisten(this, null);
    host.clients.delete(this);
    host.turns.abandon(this, { S: 'FATAL', V: 'FATAL', C: '08006', M: 'client left' });
    const owner = host.turns.owner === this;
    if (!owner && this.statements.size === 0) return;
    try {
      if (!owner) await host.turns.acquire(this);
      if (!host.broken) {
        const cleanup = [wire.SYNC];
        for (const name of this.statements.keys()) cleanup.push(wire.closeStatement(this.rename(name)));
        if (this.statements.size > 0) cleanup.push(wire.SYNC);
        const scan = wire.scanResponse(await host.raw(Buffer.concat(cleanup)));
        if (scan.status !== 'idle') await host.raw(wire.query('ROLLBACK'));
      }
    } catch (err) {
      if (host.broken) this.log.error(`PGlite failed while a client left: ${err?.message ?? err}`);
    } finally {
      host.turns.release(this);
    }
  }
}

function sameSettings(a, b) {
  if (a === null || b === null || a.size !== b.size) return false;
  for (const [name, value] of a) if (b.get(name) !== value) return false;
  return true;
}

function types(data) {
  let out = '';
  wire.forEachMessage(data, (type) => { out += String.fromCharCode(type); });
  return out;
}

module.exports = { ServeClient };

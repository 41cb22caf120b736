'use strict';
// The JS half of `onQuery`: the session (Rust) speaks the query protocols and asks for a
// statement to run; this module calls the user's `onQuery`, reads what it returns (rows,
// iterables, command results, errors) and writes the results with the binding's encoders:
// RowDescription, DataRows (encoded in Rust, a batch of rows per call), CommandComplete,
// PortalSuspended. Rows go out as they come, and a client that reads slowly pauses the source.
//
// A portal's result lives here, under the cursor id the session gave the portal, until the
// session reports the portal dropped: Describe may run a statement and Execute go on with its
// result, and an Execute with a row limit suspends it.

const binding = require('./binding.js');
const { normalizeError, failedHook } = require('./values.js');

const { QUERY_ROWS_DESCRIBE, QUERY_ROWS_ONE, QUERY_ROWS_VALUES, QUERY_ROWS_MAX_VALUES } = binding;
// answerOneRow passes at most eight values by name.
if (QUERY_ROWS_MAX_VALUES < 8) throw new Error('pg-gateway-native: the binding takes fewer row values than lib/query.js passes');

const NO_DATA = Buffer.from([0x6e, 0, 0, 0, 4]);
const EMPTY_QUERY_RESPONSE = Buffer.from([0x49, 0, 0, 0, 4]);
const PORTAL_SUSPENDED = Buffer.from([0x73, 0, 0, 0, 4]);
/** Results of at most this many rows (in an array) are encoded in one call with their messages. */
const SMALL_ROWS = 16;
/** Rows per encoder call. */
const BATCH_ROWS = 1024;
/** Bytes gathered before a write: small results leave in one write, big ones in chunks. */
const WRITE_CHUNK = 64 * 1024;
/** How long rows of a slow async source wait to be sent with more. */
const ASYNC_FLUSH_MS = 10;
/** Commands whose tag carries a row count (INSERT's has an OID 0 before it). */
const COUNTED = new Set(['SELECT', 'UPDATE', 'DELETE', 'MERGE', 'FETCH', 'MOVE', 'COPY']);
/** Types whose values are arrays or objects themselves: rows of them are never taken for batches. */
const NESTED_TYPE = /(\[\]$|^_|^jsonb?$|^interval$)/i;
const NESTED_OIDS = new Set([114, 3802, 199, 3807, 1186, 1000, 1001, 1003, 1005, 1007, 1009, 1014, 1015, 1016, 1021, 1022,
  1028, 1115, 1182, 1183, 1185, 1187, 1231, 2951]);

/** A command tag: `INSERT 0 1`, `SELECT 3`, `BEGIN`. */
function commandTag(command, rowCount) {
  const word = String(command).trim().toUpperCase();
  if (word === 'INSERT') return `INSERT 0 ${rowCount ?? 0}`;
  if (COUNTED.has(word)) return `${word} ${rowCount ?? 0}`;
  return word;
}

/** CommandComplete messages by tag (most statements repeat a few tags). */
const completes = new Map();

function completeOf(tag) {
  let message = completes.get(tag);
  if (message === undefined) {
    const length = Buffer.byteLength(tag);
    message = Buffer.allocUnsafe(6 + length);
    message[0] = 0x43;
    message.writeInt32BE(5 + length, 1);
    message.write(tag, 5);
    message[5 + length] = 0;
    if (completes.size < 1024) completes.set(tag, message);
  }
  return message;
}

/** CommandComplete of the small counts of each command, by command as the result named it. */
const smallCompletes = new Map();
const SMALL_COUNTS = 64;

/** CommandComplete for `command` with `rowCount` rows; small counts make no string. */
function completeFor(command, rowCount) {
  if (rowCount >= SMALL_COUNTS || !Number.isInteger(rowCount) || rowCount < 0) return completeOf(commandTag(command, rowCount));
  let byCount = smallCompletes.get(command);
  if (byCount === undefined) {
    byCount = new Array(SMALL_COUNTS);
    if (smallCompletes.size < 64) smallCompletes.set(command, byCount);
  }
  return byCount[rowCount] ??= completeOf(commandTag(command, rowCount));
}

/** The tag of a statement that returned nothing: its own command word, as PostgreSQL names it. */
function defaultTag(sql) {
  const word = binding.sqlCommandWord(sql);
  if (word === 'END') return 'COMMIT';
  if (word === 'ABORT') return 'ROLLBACK';
  if (word === 'START') return 'START TRANSACTION';
  return commandTag(word || 'SELECT', 0);
}

class QueryError extends Error {
  constructor(code, message, detail) {
    super(message);
    this.code = code;
    if (detail) this.detail = detail;
  }
}

/** The client went away (or the server closed the connection) while rows were going out. */
function gone() {
  return new QueryError('08006', 'the connection closed while the result was being sent');
}

function canceled() {
  return new QueryError('57014', 'canceling statement due to user request');
}

function thenOf(value) {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return undefined;
  const then = value.then;
  return typeof then === 'function' ? then : undefined;
}

/**
 * What `onQuery` returned, as a list of results. Nothing (or nothing in a place of the list)
 * completes each statement with its own command word as tag.
 */
function resultsOf(value, sql) {
  if (value === undefined || value === null) {
    const statements = binding.sqlStatements(sql);
    return statements.length > 1 ? statements.map((one) => ({ tag: defaultTag(one) })) : [{ tag: defaultTag(sql) }];
  }
  if (Array.isArray(value)) {
    const statements = value.includes(undefined) || value.includes(null) ? binding.sqlStatements(sql) : [];
    return value.map((one, i) => resultOf(one, statements[i] ?? sql));
  }
  return [resultOf(value, sql)];
}

/**
 * A COMMIT (or END) of a failed transaction block rolls it back, and PostgreSQL tags it so:
 * the first result of a statement run in a failed block says ROLLBACK whatever the hook named it.
 */
function endFailedBlock(results, state) {
  const first = results[0];
  if (state?.transactionStatus === 'error' && first !== undefined && first.tag === 'COMMIT') first.tag = 'ROLLBACK';
  return results;
}

function resultOf(value, sql) {
  if (value === undefined || value === null) return { tag: defaultTag(sql) };
  if (typeof value !== 'object') {
    throw new QueryError('XX000', `onQuery must return { fields, rows }, { command, rowCount }, an array of those, or nothing; got ${typeof value}`);
  }
  if (value.fields === undefined) {
    if (value.rows !== undefined) throw new QueryError('XX000', 'onQuery returned rows without fields');
    if (value.command === undefined) throw new QueryError('XX000', 'onQuery returned an object with neither fields nor command');
    return { tag: commandTag(value.command, value.rowCount) };
  }
  const fields = value.fields;
  if (!Array.isArray(fields)) throw new QueryError('XX000', 'the fields of a result must be an array of { name, type }');
  const rows = value.rows ?? [];
  const isArray = Array.isArray(rows);
  if (!isArray && typeof rows[Symbol.iterator] !== 'function' && typeof rows[Symbol.asyncIterator] !== 'function') {
    throw new QueryError('XX000', 'the rows of a result must be an array or an (async) iterable');
  }
  const first = fields[0]?.type;
  const nested = fields.length === 0 || (typeof first === 'number' ? NESTED_OIDS.has(first) : NESTED_TYPE.test(String(first).trim()));
  return {
    fields,
    rows,
    isArray,
    // A yielded array of rows is a batch unless a row's first value could itself be an array.
    batches: !nested,
    command: value.command ?? 'SELECT',
    rowCount: value.rowCount,
  };
}

const KIND_NUMBER = 1;
const KIND_STRING = 2;
const KIND_DATE = 3;
const KIND_BIGINT = 4;
const KIND_BOOL = 5;
const KIND_NULL = 6;
const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

/**
 * DataRows for `rows[start..end]`. Each column is gathered into one typed array (or one
 * joined string) and the batch crosses into Rust in a few calls; a column of anything else
 * (arrays, Buffers, objects for json, mixed types) sends the batch the per-value way.
 */
function encodeBatch(cursor, rows, start, end) {
  // A few rows: gathering columns costs more than it saves.
  if (end - start <= 16 || cursor.entry?.json) return binding.encodeRows(cursor.plan, rows, start, end, null, null);
  const names = cursor.names;
  const columns = new Array(names.length);
  for (let j = 0; j < names.length; j++) {
    const column = gatherColumn(rows, start, end, j, names[j], names.length);
    if (column === undefined) return binding.encodeRows(cursor.plan, rows, start, end, null, null);
    columns[j] = column;
  }
  return binding.encodeColumns(cursor.plan, end - start, columns, start);
}

/** One column of a batch as a `ColumnBatch` for the binding, or undefined if it has none. */
function gatherColumn(rows, start, end, j, name, width) {
  const count = end - start;
  let kind = 0;
  let nulls;
  let values;
  for (let i = 0; i < count; i++) {
    const row = rows[start + i];
    let value;
    if (Array.isArray(row)) {
      if (row.length !== width) return undefined;
      value = row[j];
    } else if (row !== null && typeof row === 'object') {
      value = row[name];
    } else {
      return undefined;
    }
    if (value === null || value === undefined) {
      (nulls ??= new Uint8Array(count))[i] = 1;
      continue;
    }
    const type = typeof value;
    let k;
    if (type === 'number') k = KIND_NUMBER;
    else if (type === 'string') k = KIND_STRING;
    else if (type === 'bigint') k = KIND_BIGINT;
    else if (type === 'boolean') k = KIND_BOOL;
    else if (value instanceof Date) k = KIND_DATE;
    else return undefined;
    if (kind === 0) {
      kind = k;
      if (k === KIND_NUMBER || k === KIND_DATE) values = new Float64Array(count);
      else if (k === KIND_BIGINT) values = new BigInt64Array(count);
      else if (k === KIND_BOOL) values = new Uint8Array(count);
      else values = new Array(count).fill('');
    } else if (k !== kind) {
      return undefined;
    }
    if (k === KIND_DATE) values[i] = value.getTime();
    else if (k === KIND_BOOL) values[i] = value ? 1 : 0;
    else if (k === KIND_BIGINT) {
      if (value < MIN_INT64 || value > MAX_INT64) return undefined;
      values[i] = value;
    } else values[i] = value;
  }
  if (kind === 0) return { kind: KIND_NULL };
  if (kind === KIND_STRING) return { kind, text: values.join('\0'), nulls };
  if (kind === KIND_NUMBER || kind === KIND_DATE) return { kind, numbers: values, nulls };
  if (kind === KIND_BIGINT) return { kind, bigints: values, nulls };
  return { kind, flags: values, nulls };
}

/**
 * Row plans by the `fields` array a result gave and the format codes: a server that returns
 * the same fields array each time has its plan made once. An entry is checked against the
 * fields it was made from, so an array changed in place gets a new plan.
 */
const plans = new WeakMap();

/**
 * Row plans by the shape of the fields (names, types, formats), for the servers that build a
 * new fields array per statement (`fields: [{ name, type }]` written in `onQuery`): a plan is
 * a native object, and making one per statement cost five times the rest of a small query.
 * The oldest shape goes when there are too many, and a shape of very long names is not kept
 * (names can come from a client: `SELECT 1 AS "<a megabyte>"` through a pass-through server).
 */
const plansByShape = new Map();
const MAX_SHAPES = 512;
const MAX_SHAPE_KEY = 4096;

function planFor(fields, formats) {
  const key = formats && formats.length > 0 ? formats.join(',') : '';
  let byFormats = plans.get(fields);
  const cached = byFormats?.get(key);
  if (cached !== undefined && sameFields(cached, fields)) return cached;
  const shape = shapeOf(fields, key);
  let entry = shape === undefined ? undefined : plansByShape.get(shape);
  // Found by shape: a fields array made for this statement, most likely never seen again
  // (a WeakMap entry per statement costs the collector more than the shape key costs here).
  if (entry !== undefined) return entry;
  entry = makePlan(fields, formats);
  if (shape !== undefined && shape.length <= MAX_SHAPE_KEY) {
    if (plansByShape.size >= MAX_SHAPES) plansByShape.delete(plansByShape.keys().next().value);
    plansByShape.set(shape, entry);
  }
  // A constant fields array is found by identity next time.
  if (byFormats === undefined) {
    byFormats = new Map();
    plans.set(fields, byFormats);
  }
  byFormats.set(key, entry);
  return entry;
}

/**
 * The shape key of `fields` under format codes `formats`, or undefined if a field is malformed.
 * Names and type names go in with their lengths, so no two shapes share a key whatever they hold.
 */
function shapeOf(fields, formats) {
  let shape = formats;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i];
    if (field === null || typeof field !== 'object') return undefined;
    const type = field.type;
    // A number and a string of the same digits are different types ('23' is no type name).
    if (typeof type === 'number') shape += `|#${type}`;
    else if (typeof type === 'string') shape += `|${type.length}:${type}`;
    else return undefined;
    const name = String(field.name ?? '?column?');
    shape += `,${name.length}:${name}`;
  }
  return shape;
}

function makePlan(fields, formats) {
  const normalized = fields.map((field, i) => {
    if (field === null || typeof field !== 'object' || (typeof field.type !== 'string' && typeof field.type !== 'number')) {
      throw new QueryError('XX000', `field ${i + 1} of the result must be { name, type } with a type name or OID`);
    }
    return { name: String(field.name ?? '?column?'), type: field.type };
  });
  const plan = binding.queryPlan(normalized, formats);
  if (typeof plan.code === 'string') throw new QueryError(plan.code, plan.message, plan.detail);
  const oids = normalized.map((f, i) => binding.planTypeOid(plan, i));
  // JSON columns go the per-value way in every batch: their values are JSON.stringify'd there.
  const json = oids.some((oid) => oid === 114 || oid === 3802 || oid === 199 || oid === 3807);
  return { plan, names: normalized.map((f) => f.name), types: normalized.map((f) => f.type), oids, json, description: undefined };
}

function sameFields(entry, fields) {
  if (entry.names.length !== fields.length) return false;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i];
    if (field === null || typeof field !== 'object' || field.type !== entry.types[i] || String(field.name ?? '?column?') !== entry.names[i]) return false;
  }
  return true;
}

/** A plan's RowDescription, made once. */
function descriptionOf(entry) {
  entry.description ??= binding.planRowDescription(entry.plan);
  return entry.description;
}

/** Throws the encoder's failure as an error with its SQLSTATE. */
function check(encoded) {
  if (Buffer.isBuffer(encoded)) return encoded;
  throw new QueryError(encoded.code, encoded.message, encoded.detail);
}

function isRow(value) {
  if (Array.isArray(value)) return true;
  return value !== null && typeof value === 'object' && !(value instanceof Date) && !ArrayBuffer.isView(value);
}

/**
 * Where results go: pieces gather into one write per chunk; `write()` reports whether the
 * client keeps up, `writable()` waits until it does (or the connection is gone).
 */
class Output {
  constructor(connection) {
    this.connection = connection;
    this.pieces = [];
    this.size = 0;
    this.backedUp = false;
  }

  push(buffer) {
    this.pieces.push(buffer);
    this.size += buffer.length;
    if (this.size >= WRITE_CHUNK) this.flush();
  }

  /** What is gathered and not written: it goes out with the session's own answer. */
  take() {
    if (this.pieces.length === 0) return undefined;
    const data = this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces, this.size);
    this.pieces = [];
    this.size = 0;
    return data;
  }

  flush() {
    if (this.pieces.length === 0) return;
    const data = this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces, this.size);
    this.pieces = [];
    this.size = 0;
    if (!this.connection._writeQueryOutput(data)) this.backedUp = true;
  }

  /** Resolves once the client has taken enough of the output; throws once it is gone. */
  writable() {
    this.flush();
    if (!this.backedUp) return undefined;
    this.backedUp = false;
    if (this.connection._queryOutputClosed()) throw gone();
    return this.connection._whenWritable().then(() => {
      if (this.connection._queryOutputClosed()) throw gone();
    });
  }
}

/** One running statement's `signal` and the state it aborts. */
class Run {
  constructor() {
    this.controller = undefined;
    this.aborted = false;
    /** The result being sent, let go if the statement fails. */
    this.cursor = undefined;
  }

  get signal() {
    this.controller ??= new AbortController();
    if (this.aborted && !this.controller.signal.aborted) this.controller.abort(canceled());
    return this.controller.signal;
  }

  abort(reason) {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort(reason ?? canceled());
    this.onAbort?.();
  }

  /**
   * `promise`, or a rejection with 57014 as soon as the statement is cancelled: a hook that
   * ignores `signal` must not keep a cancelled client waiting.
   */
  race(promise) {
    if (this.aborted) return Promise.reject(canceled());
    return new Promise((resolve, reject) => {
      this.onAbort = () => reject(canceled());
      promise.then(resolve, reject);
    });
  }
}

/**
 * A portal's result: its plan (types and formats), its rows (an array and an index, or an
 * iterator), and whether it has been read to the end.
 */
class Cursor {
  constructor(result, formats) {
    this.result = result;
    this.tag = result.tag;
    this.done = result.fields === undefined;
    this.completed = false;
    if (result.fields === undefined) return;
    this.entry = planFor(result.fields, formats);
    this.plan = this.entry.plan;
    this.names = this.entry.names;
    this.rows = result.isArray ? result.rows : undefined;
    this.index = 0;
    this.iterator = undefined;
    this.async = false;
    /** Rows taken from the iterator but not sent yet (the tail of a batch). */
    this.held = [];
  }

  /**
   * The cursor of a portal whose rows were all sent by the fast path (`answerSmall`): what an
   * Execute or Describe of the portal needs later. One per plan and command, shared.
   */
  static finished(entry, command) {
    const byCommand = entry.finished ??= new Map();
    let cursor = byCommand.get(command);
    if (cursor === undefined) {
      cursor = new Cursor({ fields: undefined, tag: undefined, command }, null);
      cursor.done = true;
      cursor.entry = entry;
      cursor.plan = entry.plan;
      cursor.names = entry.names;
      if (byCommand.size < 16) byCommand.set(command, cursor);
    }
    return cursor;
  }

  /** The iterator, made on first use. */
  source() {
    if (this.iterator === undefined) {
      const rows = this.result.rows;
      if (typeof rows[Symbol.asyncIterator] === 'function') {
        this.iterator = rows[Symbol.asyncIterator]();
        this.async = true;
      } else {
        this.iterator = rows[Symbol.iterator]();
      }
    }
    return this.iterator;
  }

  /** Lets go of the source: an iterator's `return()` runs its `finally` blocks. */
  close() {
    this.done = true;
    const iterator = this.iterator;
    this.iterator = undefined;
    this.rows = undefined;
    if (iterator && typeof iterator.return === 'function') {
      try {
        const result = iterator.return();
        if (thenOf(result)) result.then(undefined, () => {});
      } catch {
        // An iterator that throws on return() has nothing more to give anyway.
      }
    }
  }
}

/**
 * Sends up to `limit` rows (0: all) of `cursor` to `out`. Returns the count sent, or a promise
 * of it once the source is async or the client slow. Loops, not promise chains: a result of
 * ten million rows must not leave ten million settled promises behind.
 */
function sendRows(cursor, limit, out, run) {
  return cursor.rows !== undefined ? sendFromArray(cursor, limit, out, run) : sendFromIterator(cursor, limit, out, run);
}

function sendFromArray(cursor, limit, out, run) {
  const rows = cursor.rows;
  let sent = 0;
  const more = () => cursor.index < rows.length && !(limit > 0 && sent >= limit);
  const chunk = () => {
    if (run.aborted) throw canceled();
    let end = Math.min(rows.length, cursor.index + BATCH_ROWS);
    if (limit > 0) end = Math.min(end, cursor.index + (limit - sent));
    out.push(check(encodeBatch(cursor, rows, cursor.index, end)));
    sent += end - cursor.index;
    cursor.index = end;
  };
  const settle = () => {
    if (cursor.index >= rows.length) cursor.done = true;
    return sent;
  };
  while (more()) {
    chunk();
    const wait = more() ? out.writable() : undefined;
    if (wait) {
      return (async () => {
        await wait;
        while (more()) {
          chunk();
          const next = more() ? out.writable() : undefined;
          if (next) await next;
        }
        return settle();
      })();
    }
  }
  return settle();
}

function sendFromIterator(cursor, limit, out, run) {
  const iterator = cursor.source();
  let sent = 0;
  let batch = cursor.held;
  cursor.held = [];
  let timer;
  const full = () => batch.length >= BATCH_ROWS || (limit > 0 && sent + batch.length >= limit);
  const reachedLimit = () => limit > 0 && sent >= limit;
  /** Encodes what is gathered; returns a promise when the client is behind. */
  const emit = () => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (batch.length === 0) return undefined;
    let rows = batch;
    if (limit > 0 && rows.length > limit - sent) {
      cursor.held = rows.slice(limit - sent);
      rows = rows.slice(0, limit - sent);
    }
    batch = [];
    out.push(check(encodeBatch(cursor, rows, 0, rows.length)));
    sent += rows.length;
    return out.writable();
  };
  const take = (item) => {
    if (cursor.result.batches && Array.isArray(item) && (item.length === 0 || isRow(item[0]))) {
      for (const row of item) batch.push(row);
    } else {
      batch.push(item);
    }
  };
  const finish = () => {
    cursor.done = cursor.held.length === 0;
    if (cursor.done) cursor.iterator = undefined;
    return sent;
  };
  /** Waits for an async source; rows gathered meanwhile go out if it takes a while. */
  const awaitNext = async (next) => {
    if (batch.length > 0 && timer === undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        try {
          emit();
          out.flush();
        } catch {
          // A row that does not fit fails the statement when the loop reaches it again.
        }
      }, ASYNC_FLUSH_MS);
    }
    try {
      // Raced with the abort: a source whose next() never settles must not hold a cancelled
      // statement (or a departed client) forever.
      return await run.race(next);
    } finally {
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
      }
    }
  };
  const rest = async (wait, pending) => {
    if (wait) await wait;
    if (pending) {
      const next = await awaitNext(Promise.resolve(pending));
      if (next.done) {
        const last = emit();
        if (last) await last;
        return finish();
      }
      take(next.value);
    }
    for (;;) {
      if (run.aborted) throw canceled();
      if (full()) {
        const w = emit();
        if (reachedLimit()) return sent;
        if (w) await w;
        continue;
      }
      let next = iterator.next();
      if (thenOf(next)) next = await awaitNext(Promise.resolve(next));
      if (next.done) {
        const last = emit();
        if (last) await last;
        return finish();
      }
      take(next.value);
    }
  };
  for (;;) {
    if (run.aborted) throw canceled();
    if (full()) {
      const wait = emit();
      if (reachedLimit()) return sent;
      if (wait) return rest(wait, undefined);
      continue;
    }
    const next = iterator.next();
    if (thenOf(next)) return rest(undefined, next);
    if (next.done) {
      const wait = emit();
      return wait ? wait.then(finish) : finish();
    }
    take(next.value);
  }
}

const NO_VALUES = Object.freeze([]);

/** The `query` argument of `onQuery` (a class: an object literal with a getter is slow to make). */
class Query {
  constructor(event, run) {
    this.sql = event.sql;
    this.params = event.params ?? NO_VALUES;
    this.paramTypes = event.paramTypes ?? NO_VALUES;
    this._run = run;
  }

  /** Aborted when a CancelRequest for this connection arrives or the client goes away. */
  get signal() {
    return this._run.signal;
  }

  /** The top-level statements of `sql`, split as PostgreSQL would (quotes and comments kept whole). */
  get statements() {
    this._statements ??= binding.sqlStatements(this.sql);
    return this._statements;
  }
}

/** Marks that `onQuery` has not been called yet for a statement. */
const NOT_CALLED = Symbol('not called');

/**
 * Calls `onQuery` (unless `value`, what it returned, is known already); `then(value)` gets what
 * it returned, synchronously when it is not a promise.
 */
function callOnQuery(connection, event, state, run, value, then) {
  if (value === NOT_CALLED) value = connection.options.onQuery(new Query(event, run), state, connection);
  const pending = thenOf(value);
  if (pending) return run.race(new Promise((resolve, reject) => pending.call(value, resolve, reject))).then(then);
  return then(value);
}

/**
 * Runs what a `query` event asks and returns the reply for the session (or a promise of it);
 * `value` is what `onQuery` returned if it was called already. Never throws: a failure is the
 * reply's `error`, after the results that completed.
 */
function runQuery(connection, event, state, run, value) {
  const cursors = connection._cursors ??= new Map();
  const out = new Output(connection);
  const tags = [];
  const fail = (err) => {
    // The statement is over: its source is let go (an iterator's finally runs).
    run.cursor?.close();
    if (event.cursor) cursors.delete(event.cursor);
    const error = run.aborted ? normalizeError(canceled()) : failedHook(connection, 'onQuery', err);
    return { value: 0, tags, error };
  };
  const finish = (reply) => {
    if (connection._run === run) connection._run = undefined;
    // The tail of the result leaves with the session's answer (ReadyForQuery ...): one write.
    reply.data = out.take();
    return reply;
  };
  try {
    const reply = event.mode === 'simple'
      ? runSimple(connection, event, state, run, value, out, tags)
      : runPortal(connection, event, state, run, value, out, tags, cursors);
    if (thenOf(reply)) return reply.then(finish, (err) => finish(fail(err)));
    return finish(reply);
  } catch (err) {
    return finish(fail(err));
  }
}

function runSimple(connection, event, state, run, first, out, tags) {
  return callOnQuery(connection, event, state, run, first, (value) => {
    const results = endFailedBlock(resultsOf(value, event.sql), state);
    let i = 0;
    const next = () => {
      while (i < results.length) {
        const cursor = new Cursor(results[i], null);
        run.cursor = cursor;
        i += 1;
        if (cursor.done) {
          out.push(completeOf(cursor.tag));
          tags.push(cursor.tag);
          continue;
        }
        const rows = cursor.rows;
        if (rows !== undefined && rows.length <= SMALL_ROWS) {
          // A small result: RowDescription, rows and CommandComplete in one encoder call. The
          // only result of a statement is left to the answer (the driver may encode it
          // straight into its output), the others are encoded now.
          const tag = commandTag(cursor.result.command, cursor.result.rowCount ?? rows.length);
          cursor.done = true;
          out.push(check(binding.encodeRows(cursor.plan, rows, 0, rows.length, descriptionOf(cursor.entry), completeOf(tag))));
          tags.push(tag);
          continue;
        }
        out.push(descriptionOf(cursor.entry));
        const sent = sendRows(cursor, 0, out, run);
        const complete = (count) => {
          const tag = commandTag(cursor.result.command, cursor.result.rowCount ?? count);
          out.push(completeOf(tag));
          tags.push(tag);
        };
        if (thenOf(sent)) {
          return sent.then((count) => {
            complete(count);
            return next();
          });
        }
        complete(sent);
      }
      if (results.length === 0) out.push(EMPTY_QUERY_RESPONSE);
      return { value: 0, tags };
    };
    return next();
  });
}

function runPortal(connection, event, state, run, first, out, tags, cursors) {
  const existing = event.resume ? cursors.get(event.cursor) : undefined;
  const go = (cursor) => {
    run.cursor = cursor;
    if (event.mode === 'describe' || event.mode === 'describeExecute') {
      out.push(cursor.plan ? descriptionOf(cursor.entry) : NO_DATA);
      if (event.mode === 'describe') return { value: 0, tags };
    }
    if (cursor.plan === undefined) {
      // A command: CommandComplete for each Execute.
      out.push(completeOf(cursor.tag));
      tags.push(cursor.tag);
      return { value: 0, tags };
    }
    if (cursor.done) {
      const tag = commandTag(cursor.result.command, 0);
      out.push(completeOf(tag));
      tags.push(tag);
      return { value: 0, tags };
    }
    const limit = event.maxRows ?? 0;
    const sent = sendRows(cursor, limit, out, run);
    const complete = (count) => {
      if (!cursor.done) {
        out.push(PORTAL_SUSPENDED);
        return { value: 0, tags, suspended: true };
      }
      const tag = commandTag(cursor.result.command, cursor.result.rowCount ?? count);
      out.push(completeOf(tag));
      tags.push(tag);
      return { value: 0, tags };
    };
    return thenOf(sent) ? sent.then(complete) : complete(sent);
  };
  if (existing) return go(existing);
  return callOnQuery(connection, event, state, run, first, (value) => {
    const results = endFailedBlock(resultsOf(value, event.sql), state);
    if (results.length !== 1) {
      throw new QueryError('XX000', `a prepared statement gives one result; onQuery returned ${results.length}`);
    }
    const cursor = new Cursor(results[0], event.resultFormats);
    cursors.set(event.cursor, cursor);
    if (event.expectedTypes != null) checkDescribed(event.expectedTypes, cursor);
    return go(cursor);
  });
}

/**
 * Runs a `query` event and hands `answer(completed, suspended, data, error)` its outcome (how
 * many results completed), at once when everything ran synchronously; returns the promise
 * otherwise. `answerRows(plan, rows, flags, complete)`, when given, takes a small result to
 * encode into the driver's own output (see `sessionQueryRows`), and returns the encoder's
 * failure if a value does not fit.
 */
function answerQuery(connection, event, state, answer, answerRows) {
  const dropped = event.dropped;
  if (dropped !== undefined && dropped.length > 0) {
    const cursors = connection._cursors;
    for (const id of dropped) {
      cursors?.get(id)?.close();
      cursors?.delete(id);
    }
  }
  const run = new Run();
  connection._run = run;
  let value = NOT_CALLED;
  if (event.mode === 'simple' || !(event.resume && connection._cursors?.has(event.cursor))) {
    let small;
    try {
      value = connection.options.onQuery(new Query(event, run), state, connection);
      // Reading what it returned may throw too (a getter, a Proxy): the statement's error.
      small = thenOf(value) === undefined ? smallResult(value, event) : undefined;
    } catch (err) {
      if (connection._run === run) connection._run = undefined;
      return answer(0, false, null, run.aborted ? normalizeError(canceled()) : failedHook(connection, 'onQuery', err));
    }
    if (small !== undefined) {
      if (connection._run === run) connection._run = undefined;
      answerSmall(connection, event, small, answer, answerRows);
      return undefined;
    }
  }
  const reply = runQuery(connection, event, state, run, value);
  const send = (r) => answer(r.tags.length, r.suspended === true, r.data ?? null, r.error ?? null);
  if (thenOf(reply)) return reply.then(send);
  send(reply);
  return undefined;
}

/**
 * The request/response fast path: what `onQuery` returned synchronously is one small array
 * of rows, for a statement read whole (a simple Query, or an Execute without a row limit).
 * Returns `{ fields, rows, command, rowCount }` read once, or undefined when `value` is
 * anything else (the general path takes it). Throws what reading `value` throws.
 */
function smallResult(value, event) {
  if (value === null || typeof value !== 'object') return undefined;
  const mode = event.mode;
  if (!(mode === 'simple' || mode === 'describeExecute' || (mode === 'execute' && !event.maxRows))) return undefined;
  const fields = value.fields;
  const rows = value.rows;
  if (!Array.isArray(fields) || !Array.isArray(rows) || rows.length > SMALL_ROWS || fields.length === 0) return undefined;
  return { fields, rows, command: value.command ?? 'SELECT', rowCount: value.rowCount };
}

/**
 * Sends a small result (see `smallResult`): its (RowDescription,) rows and CommandComplete are
 * encoded in one call, into the driver's output when it takes them (`answerRows`).
 */
function answerSmall(connection, event, small, answer, answerRows) {
  const { fields, rows, command } = small;
  const describe = event.mode !== 'execute';
  let failure;
  // Once known, the RowDescription precedes a row's error, as from PostgreSQL.
  let description = null;
  try {
    const entry = planFor(fields, event.resultFormats);
    if (event.mode !== 'simple') {
      if (event.expectedTypes != null) checkDescribed(event.expectedTypes, { entry });
      // The portal ran to its end: a later Execute of it gets no rows.
      (connection._cursors ??= new Map()).set(event.cursor, Cursor.finished(entry, command));
    }
    const rowCount = small.rowCount ?? rows.length;
    if (answerRows !== undefined) {
      // The plan's RowDescription goes first if `describe`; the usual tag, `SELECT <rows>`, is
      // made natively. When a value does not fit, the driver sends the RowDescription itself.
      const complete = command === 'SELECT' && rowCount === rows.length ? null : completeFor(command, rowCount);
      // For a row that throws when read: the error below follows the RowDescription.
      if (describe) description = descriptionOf(entry);
      const flags = describe ? QUERY_ROWS_DESCRIBE : 0;
      failure = rows.length === 1
        ? answerOneRow(answerRows, entry.plan, rows[0], flags, complete, entry.names.length)
        : answerRows(entry.plan, rows, flags, complete);
      if (failure === undefined) return;
      description = null;
    } else {
      const complete = completeFor(command, rowCount);
      if (describe) description = descriptionOf(entry);
      const data = binding.encodeRows(entry.plan, rows, 0, rows.length, description, complete);
      if (Buffer.isBuffer(data)) {
        answer(1, false, data, null);
        return;
      }
      failure = data;
    }
  } catch (err) {
    // A field that is not { name, type }, an unknown type, a row that throws when read.
    answer(0, false, description, normalizeError(err));
    return;
  }
  answer(0, false, description, normalizeError(new QueryError(failure.code, failure.message, failure.detail)));
}

/**
 * `answerRows` for a result of one row: an array of a few values goes as arguments (reading
 * them here costs far less than N-API's reading of array elements), anything else as the row.
 */
function answerOneRow(answerRows, plan, row, flags, complete, width) {
  if (!Array.isArray(row) || row.length !== width) return answerRows(plan, row, flags | QUERY_ROWS_ONE, complete);
  flags |= QUERY_ROWS_VALUES;
  switch (width) {
    case 1: return answerRows(plan, row, flags, complete, row[0]);
    case 2: return answerRows(plan, row, flags, complete, row[0], row[1]);
    case 3: return answerRows(plan, row, flags, complete, row[0], row[1], row[2]);
    case 4: return answerRows(plan, row, flags, complete, row[0], row[1], row[2], row[3]);
    case 5: return answerRows(plan, row, flags, complete, row[0], row[1], row[2], row[3], row[4]);
    case 6: return answerRows(plan, row, flags, complete, row[0], row[1], row[2], row[3], row[4], row[5]);
    case 7: return answerRows(plan, row, flags, complete, row[0], row[1], row[2], row[3], row[4], row[5], row[6]);
    case 8: return answerRows(plan, row, flags, complete, row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]);
    default: return answerRows(plan, row, (flags & ~QUERY_ROWS_VALUES) | QUERY_ROWS_ONE, complete);
  }
}

/**
 * The client described the statement (and not the portal): it reads the rows with the types it
 * was told, so a result of other columns would be read wrong. PostgreSQL refuses the same way.
 */
function checkDescribed(expected, cursor) {
  const actual = cursor.entry?.oids ?? [];
  if (expected.length === actual.length && expected.every((oid, i) => oid === actual[i])) return;
  const list = (oids) => (oids.length ? oids.join(', ') : 'no columns');
  const error = new QueryError('0A000', 'cached plan must not change result type',
    `The statement was described with column types (OIDs) ${list(expected)}; onQuery returned ${list(actual)}.`);
  error.hint = expected.length === 0
    ? 'Define onDescribe: this client describes a statement before it runs it, and without onDescribe a statement is described as returning no rows.'
    : 'Make onDescribe and onQuery agree on the fields of a statement.';
  throw error;
}

/** The `statement` argument of `onDescribe`. */
class Statement {
  constructor(event, run) {
    this.sql = event.sql;
    this.paramTypes = event.paramTypes ?? NO_VALUES;
    this._run = run;
  }

  /** Aborted when a CancelRequest for this connection arrives or the client goes away. */
  get signal() {
    return this._run.signal;
  }
}

/**
 * Calls `onDescribe`: what it returns, or a promise of it that a CancelRequest (or the client
 * leaving) rejects with 57014 even when the hook ignores `signal`, as for `onQuery`.
 */
function callOnDescribe(connection, event, state) {
  const run = new Run();
  connection._run = run;
  const clear = () => {
    if (connection._run === run) connection._run = undefined;
  };
  let value;
  try {
    value = connection.options.onDescribe(new Statement(event, run), state, connection);
  } catch (err) {
    clear();
    throw err;
  }
  const pending = thenOf(value);
  if (pending === undefined) {
    clear();
    return value;
  }
  const settled = run.race(new Promise((resolve, reject) => pending.call(value, resolve, reject)));
  settled.then(clear, clear);
  return settled;
}

/** The reply to a `describe` event, from what `onDescribe` returned. */
function describeReply(value) {
  if (value === undefined || value === null) return { value: 0, paramTypes: [], fields: [] };
  if (typeof value !== 'object') throw new TypeError('onDescribe must return { paramTypes?, fields? }');
  const paramTypes = (value.paramTypes ?? []).map((type) => typeOid(type));
  const fields = (value.fields ?? []).map((field, i) => {
    if (field === null || typeof field !== 'object' || (typeof field.type !== 'string' && typeof field.type !== 'number')) {
      throw new TypeError(`field ${i + 1} from onDescribe must be { name, type } with a type name or OID`);
    }
    return { name: String(field.name ?? '?column?'), type: field.type };
  });
  return { value: 0, paramTypes, fields };
}

/** A parameter type given by name or OID, as an OID (through the binding's one type table). */
function typeOid(type) {
  if (typeof type === 'number') return type;
  const plan = binding.queryPlan([{ name: 'p', type: String(type) }], null);
  if (plan && typeof plan.code === 'string') throw new QueryError(plan.code, plan.message);
  return binding.planTypeOid(plan, 0);
}

/** The connection is gone or a CancelRequest came: the running statement stops. */
function abortRunning(connection, reason) {
  connection._run?.abort(reason);
}

/** The connection closed: every portal's source is let go. */
function dropCursors(connection) {
  abortRunning(connection);
  const cursors = connection._cursors;
  if (!cursors) return;
  connection._cursors = undefined;
  for (const cursor of cursors.values()) cursor.close();
}

module.exports = {
  answerQuery, callOnDescribe, describeReply, abortRunning, dropCursors,
  // For the tests: the column-batch encoder must agree with the per-value one.
  encodeBatch,
};

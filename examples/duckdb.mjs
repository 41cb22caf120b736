#!/usr/bin/env node
// DuckDB served over the PostgreSQL protocol: psql, node-postgres, psycopg, pgjdbc and other
// PostgreSQL clients run DuckDB SQL through `onQuery`. The gateway speaks the protocol (extended
// queries, portals, row limits, transaction status); this file runs each statement in DuckDB and
// translates parameters, result types, values and errors.
//
//   node examples/duckdb.mjs [--port 5433] [--host 127.0.0.1] [--db ./data.duckdb]
//   psql -h 127.0.0.1 -p 5433 -U duckdb

import { parseArgs } from 'node:util';
import {
  DuckDBInstance,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  DuckDBTypeId,
  ResultReturnType,
  StatementType,
  BIGINT,
  blobValue,
  listValue,
  version,
} from '@duckdb/node-api';
import { createServer } from 'pg-gateway-native';

const HELP = `Serve a DuckDB database to PostgreSQL clients.

Usage: node examples/duckdb.mjs [options]

Options:
  --port <n>     TCP port (default 5433; 0 picks a free one)
  --host <ip>    address to listen on (default 127.0.0.1)
  --db <path>    DuckDB database file (default :memory:, gone on exit)
  -h, --help     show this help

There is no authentication: any user name is let in, so keep it on a trusted address.
Connect with:  psql -h 127.0.0.1 -p 5433 -U duckdb`;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '5433' },
    host: { type: 'string', default: '127.0.0.1' },
    db: { type: 'string', default: ':memory:' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port '${args.port}'\n\n${HELP}`);
  process.exit(2);
}

const T = DuckDBTypeId;
const same = (value) => value;

// --- Results: DuckDB types and values as PostgreSQL's --------------------------------------

/** A timestamp as PostgreSQL writes it: `0044-03-15 12:00:00 BC`, `infinity`. */
function timestampText(value, zone = '') {
  const text = String(value);
  if (text.endsWith('infinity')) return text;
  return text.includes(' (BC)') ? `${text.replace(' (BC)', '')}${zone} BC` : `${text}${zone}`;
}

function dateText(value) {
  if (!value.isFinite) return value.days > 0 ? 'infinity' : '-infinity';
  return String(value).replace(' (BC)', ' BC');
}

/** TIMESTAMP_S, _MS and _NS in microseconds, PostgreSQL's precision. */
const micros = (scale) => (value) => {
  const us = scale(value);
  if (!value.isFinite) return us > 0n ? 'infinity' : '-infinity';
  return timestampText(new DuckDBTimestampValue(us));
};

/**
 * PostgreSQL's type for each DuckDB type that has one, and the value in a form the gateway's
 * encoder takes (exact text for numeric and dates: JS numbers and Dates would lose digits).
 */
const SCALARS = new Map([
  [T.BOOLEAN, ['bool', same]],
  [T.TINYINT, ['int2', same]],
  [T.UTINYINT, ['int2', same]],
  [T.SMALLINT, ['int2', same]],
  [T.USMALLINT, ['int4', same]],
  [T.INTEGER, ['int4', same]],
  [T.UINTEGER, ['int8', same]],
  [T.BIGINT, ['int8', same]],
  [T.UBIGINT, ['numeric', String]],
  [T.HUGEINT, ['numeric', String]],
  [T.UHUGEINT, ['numeric', String]],
  [T.BIGNUM, ['numeric', String]],
  [T.DECIMAL, ['numeric', String]],
  [T.FLOAT, ['float4', same]],
  [T.DOUBLE, ['float8', same]],
  [T.VARCHAR, ['text', same]],
  [T.ENUM, ['text', same]],
  [T.BLOB, ['bytea', (value) => Buffer.from(value.bytes)]],
  [T.UUID, ['uuid', String]],
  [T.DATE, ['date', dateText]],
  [T.TIME, ['time', String]],
  [T.TIMESTAMP, ['timestamp', timestampText]],
  [T.TIMESTAMP_S, ['timestamp', micros((value) => value.seconds * 1000000n)]],
  [T.TIMESTAMP_MS, ['timestamp', micros((value) => value.millis * 1000n)]],
  [T.TIMESTAMP_NS, ['timestamp', micros((value) => value.nanos / 1000n)]],
  // DuckDB keeps TIMESTAMPTZ in UTC: written in UTC, whatever this process's time zone.
  [T.TIMESTAMP_TZ, ['timestamptz', (value) => timestampText(new DuckDBTimestampValue(value.micros), '+00')]],
  [T.INTERVAL, ['interval', String]],
]);

/** `{ type, convert }` for a DuckDB type: the PostgreSQL type name and a value converter. */
function columnOf(type) {
  // JSON is a VARCHAR with an alias; the gateway takes a string for json as JSON text.
  if (type.alias === 'JSON') return { type: 'json', convert: same };
  if (type.typeId === T.LIST || type.typeId === T.ARRAY) {
    const item = columnOf(type.valueType);
    // PostgreSQL arrays of arrays are rectangular; DuckDB's lists of lists need not be.
    if (!item.type.endsWith('[]')) {
      return { type: `${item.type}[]`, convert: (value) => value.items.map((x) => (x === null ? null : item.convert(x))) };
    }
  }
  // Everything else (structs, maps, unions, TIMETZ, BIT, nested lists...) as DuckDB's own text.
  const [name, convert] = SCALARS.get(type.typeId) ?? ['text', String];
  return { type: name, convert };
}

// --- Sessions: one DuckDB connection per client ----------------------------------------------

/**
 * A client's DuckDB connection: its transactions and settings are the client's own, and DuckDB
 * can interrupt what it runs. `busy` is DuckDB's latest pending call, so that closing the
 * connection waits for it.
 */
class Session {
  constructor(db) {
    this.db = db;
    this.busy = Promise.resolve();
    /** The result being streamed, if any: see `Stream`. */
    this.stream = undefined;
  }

  track(promise) {
    this.busy = promise.then(() => {}, () => {});
    return promise;
  }

  /** Reads the open stream to its end before another statement runs. */
  async settle() {
    await this.stream?.readAll();
  }

  async close() {
    this.db.interrupt();
    await this.busy;
    this.db.closeSync();
  }
}

/**
 * A DuckDB streaming result, chunk by chunk. A DuckDB connection runs one query at a time: a
 * statement started while a stream is unfinished ends that stream, silently, as if it had no
 * more rows. Its client may well go on reading it (a portal suspended by a row limit, as pgjdbc's
 * fetchSize does, while other statements run), so before another statement starts, the stream
 * is read into memory (`readAll`) and served from there.
 */
class Stream {
  constructor(session, result) {
    this.session = session;
    this.result = result;
    this.buffered = [];
    this.ended = false;
    session.stream = this;
  }

  /** The next chunk, or null at the end. */
  async next() {
    if (this.buffered.length > 0) return this.buffered.shift();
    return this.ended ? null : this.fetch();
  }

  async fetch() {
    const chunk = await this.session.track(this.result.fetchChunk());
    if (chunk && chunk.rowCount > 0) return chunk;
    this.close();
    return null;
  }

  async readAll() {
    while (!this.ended) {
      const chunk = await this.fetch();
      if (chunk) this.buffered.push(chunk);
    }
  }

  close() {
    this.ended = true;
    if (this.session.stream === this) this.session.stream = undefined;
  }
}

/** The rows of a stream, converted, a chunk (up to 2048 rows) at a time. */
async function* batchesOf(stream, columns) {
  try {
    for (let chunk = await stream.next(); chunk; chunk = await stream.next()) {
      const rows = chunk.getRows();
      for (const row of rows) {
        for (let j = 0; j < row.length; j++) if (row[j] !== null) row[j] = columns[j].convert(row[j]);
      }
      yield rows;
    }
  } finally {
    // Read to the end, or the portal was dropped: either way nothing is left to keep.
    stream.close();
  }
}

async function* oneByOne(batches) {
  for await (const batch of batches) yield* batch;
}

// --- Statements and parameters ---------------------------------------------------------------

/** What SQL text leaves alone: strings, quoted names, comments, dollar-quoted strings. */
const QUOTED = /'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\/\*[\s\S]*?\*\/|\$([A-Za-z_]\w*)?\$[\s\S]*?\$\1\$/g;
const COMMENTS = /^(?:\s|--[^\n]*|\/\*[\s\S]*?\*\/)*/;

/** `sql` with `edit` applied to each stretch of it between quoted parts. */
function outsideQuotes(sql, edit) {
  let out = '';
  let last = 0;
  for (const match of sql.matchAll(QUOTED)) {
    out += edit(sql.slice(last, match.index)) + match[0];
    last = match.index + match[0].length;
  }
  return out + edit(sql.slice(last));
}

/**
 * The statements of a simple Query, split at semicolons as PostgreSQL splits them, each with
 * where it starts in the Query (for error positions). Comment-only pieces are no statement.
 */
function splitStatements(sql) {
  const statements = [];
  let start = 0;
  const add = (end) => {
    const text = sql.slice(start, end);
    const lead = text.length - text.trimStart().length;
    if (text.replace(COMMENTS, '') !== '') statements.push({ text: text.trim(), start: start + lead });
  };
  // Semicolons become NULs outside quotes: same length, so offsets stay those of `sql`.
  const marked = outsideQuotes(sql, (part) => part.replaceAll(';', '\0'));
  for (let end = marked.indexOf('\0'); end >= 0; end = marked.indexOf('\0', start)) {
    add(end);
    start = end + 1;
  }
  add(sql.length);
  return statements;
}

/** The command word of a statement, for its command tag: `CREATE`, `INSERT`... */
function commandWord(statement) {
  return (/^\w+/.exec(statement.replace(COMMENTS, ''))?.[0] ?? 'SELECT').toUpperCase();
}

/**
 * psql's catalog queries, made DuckDB's. DuckDB has PostgreSQL's catalog views (pg_class,
 * pg_namespace, pg_attribute...) and functions (pg_table_is_visible, format_type...); with
 * these few rewrites and `pg_get_userbyid` (created in each session: nothing can be created in
 * DuckDB's pg_catalog), psql's \dt, \d, \dv, \di, \ds, \dn and \dT work. \d <table>, \l, \df, \du
 * and the like need catalog tables and functions DuckDB does not have.
 */
const CATALOG_REWRITES = [
  [/OPERATOR\(pg_catalog\.([~!<>=]+)\)/g, '$1'],
  [/\s+COLLATE\s+pg_catalog\.default\b/g, ''],
  [/\bpg_catalog\.pg_get_userbyid\(/g, 'pg_get_userbyid('],
];
const SESSION_SETUP = [`CREATE TEMP MACRO pg_get_userbyid(role) AS 'duckdb'`];

/** DuckDB's type for a parameter type a client declares (by OID) when DuckDB cannot infer one. */
const CASTS = new Map([
  [16, 'BOOLEAN'], [17, 'BLOB'], [20, 'BIGINT'], [21, 'SMALLINT'], [23, 'INTEGER'], [114, 'JSON'],
  [700, 'FLOAT'], [701, 'DOUBLE'], [1082, 'DATE'], [1083, 'TIME'], [1114, 'TIMESTAMP'],
  [1184, 'TIMESTAMPTZ'], [1186, 'INTERVAL'], [2950, 'UUID'], [3802, 'JSON'],
]);

/**
 * Prepares one statement. DuckDB takes `$1` parameters as they are and infers each one's type
 * from where it stands; where it cannot (`select $1`), the statement describes no columns until
 * values are bound, and a client that asks for a description first (asyncpg, postgres.js,
 * pgjdbc) would get none. Such parameters are cast to the type the client declared, or to text,
 * as PostgreSQL does. Describe and execute both come here, so they agree on the result's types.
 */
async function prepare(session, sql, paramTypes) {
  const text = outsideQuotes(sql, (part) => CATALOG_REWRITES.reduce((out, [from, to]) => out.replace(from, to), part));
  const prepared = await session.track(session.db.prepare(text));
  const open = new Set();
  for (let i = 1; i <= prepared.parameterCount; i++) {
    if (prepared.parameterTypeId(i) === T.INVALID) open.add(i);
  }
  if (open.size === 0) return prepared;
  prepared.destroySync();
  const typed = outsideQuotes(text, (part) => part.replace(/(?<![\w$])\$(\d+)/g, (token, n) =>
    open.has(Number(n)) ? `CAST($${n} AS ${CASTS.get(paramTypes[n - 1]) ?? 'VARCHAR'})` : token));
  return session.track(session.db.prepare(typed));
}

/** A parameter's value (decoded by the gateway from its PostgreSQL type) as DuckDB binds it. */
function bindParameter(prepared, index, value, oid) {
  if (value === null) return prepared.bindNull(index);
  prepared.bindValue(index, toDuckDB(value, oid), typeof value === 'bigint' ? BIGINT : undefined);
}

function toDuckDB(value, oid) {
  if (value instanceof Date) {
    // timestamp (1114) is a wall-clock time, decoded as if in UTC; timestamptz an instant.
    const us = BigInt(value.getTime()) * 1000n;
    return oid === 1114 ? new DuckDBTimestampValue(us) : new DuckDBTimestampTZValue(us);
  }
  if (value instanceof Uint8Array) return blobValue(value);
  if (Array.isArray(value)) return listValue(value.map((item) => (item === null ? null : toDuckDB(item, 0))));
  return value;
}

/**
 * Whether a prepared statement returns rows, before it runs. DuckDB gives commands a result too:
 * one `Count` (BIGINT) or `Success` (BOOLEAN) column.
 */
function returnsRows(prepared) {
  if (prepared.statementType === StatementType.SELECT || prepared.statementType === StatementType.EXPLAIN) return true;
  if (prepared.columnCount !== 1) return true;
  const name = prepared.columnName(0);
  const id = prepared.columnTypeId(0);
  return !((name === 'Count' && id === T.BIGINT) || (name === 'Success' && id === T.BOOLEAN));
}

/** DML whose `RETURNING` rows keep their own command tag (`INSERT 0 3`, not `SELECT 3`). */
const DML = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);
/** Command tags that are not the statement's first word. */
const TAGS = { END: 'COMMIT', ABORT: 'ROLLBACK', START: 'START TRANSACTION' };

/**
 * Runs one statement: a result for `onQuery`, its rows streaming from DuckDB, or all read into
 * an array if `whole`.
 */
async function execute(session, sql, params, paramTypes, whole = false) {
  const prepared = await prepare(session, sql, paramTypes);
  let result;
  try {
    params.forEach((value, i) => bindParameter(prepared, i + 1, value, paramTypes[i]));
    result = await session.track(prepared.stream());
  } finally {
    // The result outlives its prepared statement (DuckDB's own `connection.stream()` does this).
    prepared.destroySync();
  }
  const word = commandWord(sql);
  if (result.returnType === ResultReturnType.CHANGED_ROWS) return { command: word, rowCount: result.rowsChanged };
  if (result.returnType !== ResultReturnType.QUERY_RESULT) return { command: TAGS[word] ?? word };
  const columns = result.columnTypes().map(columnOf);
  const fields = result.columnNames().map((name, i) => ({ name, type: columns[i].type }));
  const batches = batchesOf(new Stream(session, result), columns);
  let rows;
  if (whole) {
    rows = [];
    for await (const batch of batches) for (const row of batch) rows.push(row);
  } else {
    // The gateway takes a yielded array of rows for a batch, unless the first column's values
    // are arrays or JSON themselves: then the rows must come one by one.
    rows = /(\[\]|^json)$/.test(fields[0]?.type) ? oneByOne(batches) : batches;
  }
  return { command: DML.has(word) ? word : 'SELECT', fields, rows };
}

/**
 * COMMIT and ROLLBACK where PostgreSQL and DuckDB differ. PostgreSQL rolls a failed transaction
 * back however it ends, where DuckDB would commit what ran before a statement that failed before
 * running (a missing column: DuckDB aborts a transaction only on errors at run time). And
 * PostgreSQL only warns about ending no transaction, where DuckDB fails. Returns the command tag,
 * or undefined to let DuckDB run the statement.
 */
async function endTransaction(session, word, status) {
  const commit = word === 'COMMIT' || word === 'END';
  if (!commit && word !== 'ROLLBACK' && word !== 'ABORT') return undefined;
  if (status === 'idle') return commit ? 'COMMIT' : 'ROLLBACK';
  if (status !== 'error' || !commit) return undefined;
  await session.track(session.db.run('ROLLBACK'));
  return 'ROLLBACK';
}

// --- Errors ----------------------------------------------------------------------------------

/** SQLSTATEs for DuckDB's error messages (DuckDB has no codes of its own). */
const SQLSTATES = [
  [/^Parser Error/, '42601'],
  [/^Catalog Error: Table with name .* does not exist/, '42P01'],
  [/^Catalog Error: (Table|View|Index|Sequence) with name .* already exists/, '42P07'],
  [/^Catalog Error: Schema with name .* already exists/, '42P06'],
  [/^Catalog Error: (Scalar|Table|Aggregate) Function with name .* does not exist/, '42883'],
  [/^Catalog Error: Type with name .* does not exist/, '42704'],
  [/^Binder Error: (Referenced column|Values list .*does not have a column named|Table .* does not have a column)/, '42703'],
  [/^Binder Error: No function matches/, '42883'],
  [/^Constraint Error: Duplicate key/, '23505'],
  [/^Constraint Error: NOT NULL/, '23502'],
  [/^Constraint Error: Violates foreign key/, '23503'],
  [/^Constraint Error: CHECK/, '23514'],
  [/^Conversion Error/, '22P02'],
  [/^Out of Range Error/, '22003'],
  [/^INTERRUPT Error/, '57014'],
  [/^TransactionContext Error: Current transaction is aborted/, '25P02'],
  [/^TransactionContext Error/, '25000'],
  [/^(Binder|Catalog) Error/, '42000'],
];

/**
 * A DuckDB error as an ErrorResponse. DuckDB's message is several lines: the error, maybe a
 * "Did you mean" (the hint), and `LINE n: <text>` with a caret under the error, which becomes
 * `position` (in the Query, where `statement` starts at `start`) so that psql draws its caret.
 */
function backendError(err, { text: sql, start }) {
  const text = String(err?.message ?? err).replace(/^Failed to extract statements: /, '');
  const [message, ...rest] = text.split('\n');
  const error = { code: SQLSTATES.find(([pattern]) => pattern.test(message))?.[1] ?? 'XX000', message };
  const at = /^LINE (\d+): (.*)\n( *)\^/m.exec(text);
  if (at) {
    // DuckDB cuts a long line down, `...` at either end, and shows the SQL it ran (rewritten
    // maybe): the position is found only if the part shown is the client's own text.
    const lines = sql.split('\n');
    const cut = at[2].startsWith('...') ? 3 : 0;
    const shown = at[2].slice(cut).replace(/\.\.\.$/, '');
    const offset = lines[at[1] - 1]?.indexOf(shown) ?? -1;
    if (offset >= 0) {
      const before = lines.slice(0, at[1] - 1).reduce((sum, line) => sum + line.length + 1, 0);
      error.position = String(start + before + offset + at[3].length - `LINE ${at[1]}: `.length - cut + 1);
    }
  }
  const hint = rest.filter((line) => line.trim() && !/^LINE \d+: /.test(line) && !/^ *\^$/.test(line)).join('\n');
  if (hint) error.hint = hint;
  return error;
}

// --- The server ------------------------------------------------------------------------------

const instance = await DuckDBInstance.create(args.db);
const sessions = new WeakMap();

/** The client's session, opened on its first statement and closed with its connection. */
function sessionOf(connection) {
  let session = sessions.get(connection);
  if (!session) {
    session = instance.connect().then(async (db) => {
      for (const sql of SESSION_SETUP) await db.run(sql);
      return new Session(db);
    });
    sessions.set(connection, session);
    connection.socket.on('close', () => session.then((s) => s.close()));
  }
  return session;
}

const server = createServer({
  authMode: 'none',
  serverVersion: `16.3 (DuckDB ${version()})`,

  async onQuery({ sql, params, paramTypes, signal }, state, connection) {
    const session = await sessionOf(connection);
    await session.settle();
    signal.addEventListener('abort', () => session.db.interrupt(), { once: true });
    const statements = splitStatements(sql);
    if (statements.length === 0) return []; // an empty Query: EmptyQueryResponse
    const run = async (statement, last) => {
      try {
        // Each statement starts once the previous one's rows are read: all but the last
        // statement of a Query are read here, and the last one streams.
        return await execute(session, statement.text, params, paramTypes, !last);
      } catch (err) {
        // Clients set PostgreSQL parameters that DuckDB does not have (pgjdbc sets
        // extra_float_digits, others application_name): they are taken as set.
        const word = commandWord(statement.text);
        if ((word === 'SET' || word === 'RESET') && /unrecognized configuration parameter/.test(err?.message)) return { command: word };
        throw backendError(err, statement);
      }
    };
    if (statements.length === 1) {
      const tag = await endTransaction(session, commandWord(statements[0].text), state.transactionStatus);
      return tag ? { command: tag } : run(statements[0], true);
    }
    // PostgreSQL parses a whole Query before it runs any of it: so does DuckDB here, and a
    // syntax error anywhere runs nothing. Each statement then commits on its own (DuckDB's
    // autocommit), where PostgreSQL would roll back a Query that fails halfway; and the client
    // of such a Query sees the error only, not the results before it (they go out together).
    await session.track(session.db.extractStatements(sql)).catch((err) => {
      throw backendError(err, { text: sql, start: 0 });
    });
    const results = [];
    for (let i = 0; i < statements.length; i++) results.push(await run(statements[i], i === statements.length - 1));
    return results;
  },

  async onDescribe({ sql, paramTypes }, state, connection) {
    const session = await sessionOf(connection);
    await session.settle();
    let prepared;
    try {
      prepared = await prepare(session, sql, paramTypes);
    } catch (err) {
      throw backendError(err, { text: sql, start: 0 });
    }
    try {
      const params = [];
      for (let i = 1; i <= prepared.parameterCount; i++) params.push(columnOf(prepared.parameterType(i)).type);
      const fields = [];
      if (returnsRows(prepared)) {
        for (let i = 0; i < prepared.columnCount; i++) {
          fields.push({ name: prepared.columnName(i), type: columnOf(prepared.columnType(i)).type });
        }
      }
      return { paramTypes: params, fields };
    } finally {
      prepared.destroySync();
    }
  },
});

const address = await server.listen({ port, host: args.host }).catch((err) => {
  console.error(`cannot listen: ${err.message}`);
  process.exit(1);
});
console.log(`DuckDB ${version()} (${args.db === ':memory:' ? 'in memory' : args.db})`);
console.log(`listening on ${address.address}:${address.port}`);
console.log(`connect with: psql -h ${address.address} -p ${address.port} -U duckdb`);

for (const name of ['SIGINT', 'SIGTERM']) {
  process.on(name, async () => {
    console.log(`${name}: shutting down`);
    await server.close({ gracePeriod: 1000 });
    // Closing the database checkpoints a database file.
    instance.closeSync();
    process.exit(0);
  });
}

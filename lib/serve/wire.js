'use strict';
// The few wire-protocol facts `serve` needs beyond what the gateway already does: building
// frontend messages for PGlite, renaming a client's prepared statements, and walking PGlite's
// answers (ReadyForQuery's status, ParameterStatus, notifications, errors).

const STATUS = { 0x49: 'idle', 0x54: 'transaction', 0x45: 'error' };

function message(type, body) {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstring(value) {
  return Buffer.from(`${value}\0`);
}

const SYNC = message(0x53, Buffer.alloc(0));

/** A simple Query message. */
function query(sql) {
  return message(0x51, cstring(sql));
}

/** `name` as a quoted SQL identifier. */
function identifier(name) {
  return `"${String(name).replace(/"/g, '""')}"`;
}

/** A StartupMessage (protocol 3.0) with `parameters`. */
function startup(parameters) {
  const body = Buffer.concat([
    Buffer.from([0, 3, 0, 0]),
    ...Object.entries(parameters).map(([name, value]) => Buffer.from(`${name}\0${value}\0`)),
    Buffer.from([0]),
  ]);
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeInt32BE(out.length, 0);
  body.copy(out, 4);
  return out;
}

/** A ParameterStatus message. */
function parameterStatus(name, value) {
  return message(0x53, Buffer.concat([cstring(name), cstring(value)]));
}

/** Close of a prepared statement (`S`). */
function closeStatement(name) {
  return message(0x43, Buffer.concat([Buffer.from('S'), cstring(name)]));
}

/** The zero-terminated string at `offset`, and where it ends (its terminator). */
function readCString(data, offset) {
  const end = data.indexOf(0, offset);
  if (end < 0) return null;
  return { value: data.toString('utf8', offset, end), end };
}

/**
 * A frontend message with its statement name (at `offset`) replaced by `rename(name)`.
 * Unnamed statements keep their empty name: PostgreSQL replaces them at every Parse, so they
 * never outlive a client's turn in a way another client could see.
 */
function withStatementName(data, offset, rename) {
  const name = readCString(data, offset);
  if (name === null || name.value === '') return { data, name: '' };
  const renamed = Buffer.from(rename(name.value));
  const out = Buffer.allocUnsafe(data.length - (name.end - offset) + renamed.length);
  data.copy(out, 0, 0, offset);
  renamed.copy(out, offset);
  data.copy(out, offset + renamed.length, name.end);
  out.writeInt32BE(out.length - 1, 1);
  return { data: out, name: name.value };
}

/**
 * Renames the prepared statement a Parse, Bind, Describe or Close names; other messages pass
 * as they are. Returns `{ data, parsed?, bound?, closed? }`: the message to send, and the
 * client's statement it created, bound or closed.
 */
function renameStatement(data, rename) {
  switch (data[0]) {
    case 0x50: { // Parse: name, query, ...
      const { data: out, name } = withStatementName(data, 5, rename);
      return name ? { data: out, parsed: name } : { data };
    }
    case 0x42: { // Bind: portal, statement, ...
      const portal = readCString(data, 5);
      if (portal === null) return { data };
      const { data: out, name } = withStatementName(data, portal.end + 1, rename);
      return name ? { data: out, bound: name } : { data: out };
    }
    case 0x44: // Describe: 'S' or 'P', name
    case 0x43: { // Close
      if (data[5] !== 0x53) return { data };
      const { data: out, name } = withStatementName(data, 6, rename);
      return data[0] === 0x43 && name ? { data: out, closed: name } : { data: out };
    }
    default:
      return { data };
  }
}

/** The SQL of a Query or Parse message ('' for others). */
function sqlOf(data) {
  if (data[0] === 0x51) return readCString(data, 5)?.value ?? '';
  if (data[0] === 0x50) {
    const name = readCString(data, 5);
    return name === null ? '' : (readCString(data, name.end + 1)?.value ?? '');
  }
  return '';
}

/** The fields of an ErrorResponse or NoticeResponse body, by field code letter. */
function errorFields(data, start, end) {
  const fields = {};
  let at = start;
  while (at < end && data[at] !== 0) {
    const code = String.fromCharCode(data[at]);
    const value = readCString(data, at + 1);
    if (value === null || value.end >= end) break;
    fields[code] = value.value;
    at = value.end + 1;
  }
  return fields;
}

/** An ErrorResponse from fields by code letter (S, V, C, M, D, H, ...). */
function errorMessage(fields) {
  const parts = [];
  for (const [code, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(Buffer.from(code), cstring(value));
  }
  parts.push(Buffer.alloc(1));
  return message(0x45, Buffer.concat(parts));
}

/**
 * Walks a run of backend messages. Returns what `serve` acts on: the last ReadyForQuery's
 * status (or null), ParameterStatus pairs, notifications `{ channel, payload, pid }`, and the
 * byte ranges of ErrorResponses and NotificationResponses (to rewrite or take out).
 */
function scanResponse(data) {
  const result = { status: null, parameters: null, notifications: null, errors: null, complete: true };
  let at = 0;
  while (at + 5 <= data.length) {
    const type = data[at];
    const length = data.readInt32BE(at + 1);
    const end = at + 1 + length;
    if (length < 4 || end > data.length) {
      result.complete = false;
      break;
    }
    if (type === 0x5a) {
      result.status = STATUS[data[at + 5]] ?? null;
    } else if (type === 0x53) {
      const name = readCString(data, at + 5);
      const value = name && readCString(data, name.end + 1);
      if (value) (result.parameters ??= []).push([name.value, value.value]);
    } else if (type === 0x41) {
      const pid = data.readInt32BE(at + 5);
      const channel = readCString(data, at + 9);
      const payload = channel && readCString(data, channel.end + 1);
      if (payload) (result.notifications ??= []).push({ channel: channel.value, payload: payload.value, pid, start: at, end });
    } else if (type === 0x45) {
      (result.errors ??= []).push({ start: at, end });
    }
    at = end;
  }
  return result;
}

/**
 * Calls `visit(type, start, end)` for each whole message of a run of backend or frontend
 * messages (`end` is where the next one starts); stops at a partial one.
 */
function forEachMessage(data, visit) {
  let at = 0;
  while (at + 5 <= data.length) {
    const end = at + 1 + data.readInt32BE(at + 1);
    if (end <= at + 4 || end > data.length) return;
    visit(data[at], at, end);
    at = end;
  }
}

/** `data` without the byte ranges given (sorted, not overlapping), with `replace` for each. */
function splice(data, ranges, replace) {
  if (ranges.length === 0) return data;
  const parts = [];
  let at = 0;
  for (const range of ranges) {
    parts.push(data.subarray(at, range.start));
    const replacement = replace(range);
    if (replacement) parts.push(replacement);
    at = range.end;
  }
  parts.push(data.subarray(at));
  return Buffer.concat(parts);
}

/** Rows of a simple query's answer, as arrays of text (null for NULL), and its first error. */
function textRows(data) {
  const rows = [];
  let error = null;
  let at = 0;
  while (at + 5 <= data.length) {
    const type = data[at];
    const end = at + 1 + data.readInt32BE(at + 1);
    if (end > data.length) break;
    if (type === 0x44) {
      const count = data.readInt16BE(at + 5);
      const row = [];
      let p = at + 7;
      for (let i = 0; i < count; i++) {
        const len = data.readInt32BE(p);
        p += 4;
        if (len < 0) row.push(null);
        else {
          row.push(data.toString('utf8', p, p + len));
          p += len;
        }
      }
      rows.push(row);
    } else if (type === 0x45 && error === null) {
      error = errorFields(data, at + 5, end);
    }
    at = end;
  }
  return { rows, error };
}

module.exports = {
  SYNC,
  forEachMessage,
  identifier,
  message,
  query,
  closeStatement,
  renameStatement,
  sqlOf,
  errorFields,
  errorMessage,
  scanResponse,
  startup,
  parameterStatus,
  splice,
  textRows,
};

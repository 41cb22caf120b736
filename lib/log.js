'use strict';
// The `logger` option: connection lifecycle lines (as PostgreSQL's log_connections and
// log_disconnections) and server-side errors, as pino-style `{ level, msg, ...fields }`.
// Nothing is logged without a logger; errors then go to onError or stderr (see report.js).

const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'];

/** The `logLevel` the binding takes: the user's, 'info' with a logger, 'silent' without. */
function logLevelOption(options) {
  const { logger, logLevel } = options;
  if (logger !== undefined && logger !== null) {
    const isFunction = typeof logger === 'function';
    if (!isFunction && (typeof logger !== 'object' || !LEVELS.slice(0, 4).every((level) => typeof logger[level] === 'function'))) {
      throw new TypeError('option logger must be a function (entry) => void, or an object with debug, info, warn and error methods (pino, console)');
    }
  }
  if (logLevel !== undefined && !LEVELS.includes(logLevel)) {
    throw new TypeError(`unknown logLevel '${logLevel}': expected one of ${LEVELS.map((l) => `'${l}'`).join(', ')}`);
  }
  if (logger === undefined || logger === null) return 'silent';
  return logLevel ?? 'info';
}

/** Whether the connection's logger takes `level`. */
function wants(options, level) {
  if (!options?.logger) return false;
  return LEVELS.indexOf(level) >= LEVELS.indexOf(options.logLevel ?? 'info');
}

/**
 * Sends one line to the logger: `logger(entry)` for a function, `logger[level](fields, msg)`
 * for a pino-style object. Fields that are undefined or null are left out. What the logger
 * throws or rejects is swallowed: a broken logger must not break connections.
 */
function write(options, level, msg, fields) {
  const logger = options?.logger;
  if (!logger || !wants(options, level)) return;
  const clean = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null) clean[key] = value;
  }
  try {
    const result = typeof logger === 'function' ? logger({ level, msg, ...clean }) : logger[level](clean, msg);
    // An async logger that rejects must not become an unhandled rejection (which ends Node).
    if (result && typeof result.then === 'function') result.then(undefined, () => {});
  } catch {
    // The logger's own failure has nowhere better to go.
  }
}

/** A line the Rust driver built (`event.log`, see src/server/log.rs). */
function writeNative(options, line) {
  const { level, msg, ...fields } = line;
  write(options, level, msg, fields);
}

module.exports = { LEVELS, logLevelOption, wants, write, writeNative };

'use strict';
// Server-side errors a client cannot report: a hook that failed (what the client saw as
// XX000), a TLS handshake that failed. They go to the `onError` option; without one, to the
// `logger` (level 'error'); without either, to stderr once per kind, so that a failure is
// never silent and never floods the log.

const { write, wants } = require('./log.js');

const printed = new Set();

/**
 * Reports `error` (an Error with `kind`: 'hook' or 'tls') for `connection`. Never throws: what
 * `onError` throws is printed once instead.
 */
function reportError(connection, error) {
  const onError = connection?.options?.onError;
  if (typeof onError === 'function') {
    try {
      const real = connection.isPlaceholder ? undefined : connection;
      const result = onError(error, real?.state, real);
      if (result && typeof result.then === 'function') result.then(undefined, (err) => printOnce('onError', err));
    } catch (err) {
      printOnce('onError', err);
    }
    return;
  }
  const options = connection?.options;
  if (wants(options, 'error')) {
    const real = connection.isPlaceholder ? undefined : connection;
    const socket = real?.socket;
    write(options, 'error', error.message, {
      kind: error.kind,
      hook: error.hook,
      remoteAddress: socket?.remoteAddress,
      remotePort: socket?.remotePort,
      err: error,
    });
    return;
  }
  if (options?.logger) return; // a logger at 'silent' asked for nothing
  printOnce(error.kind, error);
}

function printOnce(kind, error) {
  if (printed.has(kind)) return;
  printed.add(kind);
  const text = kind === 'onError' ? `the onError hook failed: ${error?.message ?? error}` : error.message;
  process.emitWarning(`${text} (set the onError option to see every error; this is the only one of its kind printed)`, {
    type: 'PgGatewayError',
    code: 'PG_GATEWAY_ERROR',
  });
}

/** The Error for a hook that failed; `cause` is what it threw. */
function hookFailure(hook, normalized, cause) {
  const error = new Error(`${hook} failed: ${normalized.message}`, cause === undefined ? undefined : { cause });
  error.kind = 'hook';
  error.hook = hook;
  return error;
}

/** Reports a hook's failure if the client saw it as an internal error (not a chosen SQLSTATE). */
function reportHookFailure(connection, hook, normalized, cause) {
  if (normalized?.code === 'XX000') reportError(connection, hookFailure(hook, normalized, cause));
}

/**
 * The Error for a connection that failed where its client could not be told why: `message`
 * from Rust says why (kind 'tls': a TLS handshake; 'certificate': a client certificate refused).
 */
function connectionProblem(message) {
  const error = new Error(message);
  error.kind = message.startsWith('client certificate') ? 'certificate' : 'tls';
  return error;
}

module.exports = { reportError, reportHookFailure, connectionProblem };

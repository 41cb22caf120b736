'use strict';
// The JS half of the hook table (Rust's half is `HookKind` in src/session/hooks.rs): for each
// hook event kind, which option it calls and how. Both drivers run every hook but `onMessage` and
// `onQuery` (lib/query.js, answered in positional arguments) through `callHook`, and both answer Rust with the same reply shape,
// `{ value, error?, tls? }`, which Rust turns into the session's terms in one place.

const {
  normalizeError, tlsOptions, credentials, settle, scramSecretReply, warnOnce,
} = require('./values.js');
const { reportHookFailure } = require('./report.js');
const { callOnDescribe, describeReply } = require('./query.js');

/** `call(options, event, state, connection)` runs the user's hook; `answer(value)` is the reply. */
const HOOKS = {
  startup: {
    name: 'onStartup',
    call: (options, event, state, connection) => options.onStartup(state, connection),
    answer: (value) => ({ value: value ? 1 : 0 }),
  },
  validate: {
    name: 'validateCredentials',
    call: (options, event, state, connection) => options.validateCredentials(credentials(event), state, connection),
    answer: (value) => ({ value: value ? 1 : 0 }),
  },
  scramSecret: {
    name: 'getScramSecret',
    call: (options, event, state, connection) => options.getScramSecret({ user: event.user }, state, connection),
    answer: scramSecretReply,
    // Not sent to the client: an error from a secret lookup (often thrown for unknown users
    // only) would tell it whether the user exists, and may carry secrets. The login fails as
    // with a wrong password; the operator gets the error as a warning.
    failed: (error) => {
      warnOnce(`getScramSecret failed: ${error.message}; the login fails as with a wrong password`, 'PG_GATEWAY_SCRAM_SECRET');
      return { value: 0 };
    },
  },
  authenticated: {
    name: 'onAuthenticated',
    call: (options, event, state, connection) => options.onAuthenticated(state, connection),
    answer: () => ({ value: 0 }),
  },
  tlsUpgrade: {
    name: 'onTlsUpgrade',
    call: (options, event, state, connection) => options.onTlsUpgrade(state, connection),
    answer: () => ({ value: 0 }),
  },
  describe: {
    name: 'onDescribe',
    call: (options, event, state, connection) => callOnDescribe(connection, event, state),
    answer: describeReply,
  },
  tls: {
    name: 'the tls callback',
    // pg-gateway's TlsOptionsCallback, called once with the server name known.
    call: (options, event) => options.tls({ sniServerName: event.sniServerName ?? undefined }),
    answer: (value) => ({ value: 0, tls: tlsOptions(value, 'the tls callback result') }),
  },
};

/**
 * Runs the hook for a (non-message) event and hands `done(reply)` the answer exactly once: at
 * once when the hook is synchronous, after it settles when not (the promise is returned then).
 * What the hook throws, and an answer that cannot be used, become the reply's `error`.
 */
function callHook(connection, event, state, done) {
  const hook = HOOKS[event.kind];
  if (!hook) {
    done({ value: 0 });
    return undefined;
  }
  return settle(() => hook.call(connection.options, event, state, connection), (value, error, thrown) => {
    if (error) {
      if (hook.failed) return done(hook.failed(error));
      reportHookFailure(connection, hook.name ?? event.kind, error, thrown);
      return done({ value: 0, error });
    }
    let reply;
    try {
      reply = hook.answer(value);
    } catch (err) {
      reply = { value: 0, error: normalizeError(err) };
      reportHookFailure(connection, hook.name ?? event.kind, reply.error, err);
    }
    return done(reply);
  });
}

module.exports = { callHook };

'use strict';
// Conversions between what users pass (pg-gateway's shapes) and what the binding takes.

const binding = require('./binding.js');
const { reportHookFailure } = require('./report.js');
const { logLevelOption } = require('./log.js');

const HOOK_NAMES = [
  'onMessage', 'onStartup', 'validateCredentials', 'getScramSecret', 'onAuthenticated', 'onTlsUpgrade', 'onCancel',
  'onQuery', 'onDescribe',
];
/** Every option key PostgresConnection and createServer read; others are warned about. */
const OPTION_NAMES = [
  ...HOOK_NAMES, 'onError', 'authMode', 'serverVersion', 'serverParameters', 'driver', 'tls', 'maxMessageSize', 'authTimeout',
  'writeTimeout', 'maxConnections', 'stats', 'logger', 'logLevel',
];
const KNOWN_OPTIONS = new Set(OPTION_NAMES);
const AUTH_MODES = ['none', 'cleartextPassword', 'md5Password', 'scramSha256', 'certificate'];
const DRIVERS = ['js', 'native'];
const ERROR_FIELDS = [
  'detail', 'hint', 'position', 'internalPosition', 'internalQuery', 'where', 'schema', 'table',
  'column', 'dataType', 'constraint', 'file', 'line', 'routine',
];

/** Checks pg-gateway options and turns them into the plain object the binding takes. */
function nativeOptions(options, { allowCertificateWithoutTls = false } = {}) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('PostgresConnection options must be an object');
  }
  warnUnknownOptions(options);
  const authMode = options.authMode ?? 'md5Password';
  if (!AUTH_MODES.includes(authMode)) {
    throw new TypeError(`unknown authMode '${authMode}': expected one of ${AUTH_MODES.map((m) => `'${m}'`).join(', ')}`);
  }
  for (const name of [...HOOK_NAMES, 'onError']) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`option ${name} must be a function`);
    }
  }
  if (options.serverVersion !== undefined && typeof options.serverVersion !== 'string') {
    throw new TypeError('option serverVersion must be a string');
  }
  const parameters = options.serverParameters;
  if (parameters !== undefined && parameters !== null) {
    if (typeof parameters !== 'object' || Array.isArray(parameters)) {
      throw new TypeError(`option serverParameters must be an object of { name: 'value' } strings, got ${describe(parameters)}`);
    }
    for (const [name, value] of Object.entries(parameters)) {
      if (typeof value !== 'string') {
        throw new TypeError(`option serverParameters.${name} must be a string, got ${describe(value)}`);
      }
    }
  }
  if (options.driver !== undefined && !DRIVERS.includes(options.driver)) {
    throw new TypeError(`unknown driver '${options.driver}': expected 'js' or 'native'`);
  }
  let tls;
  let tlsCallback = false;
  if (options.tls !== undefined && options.tls !== null) {
    if (typeof options.tls === 'function') tlsCallback = true;
    else tls = tlsOptions(options.tls, 'tls');
  }
  if (authMode === 'scramSha256' && typeof options.getScramSecret !== 'function') {
    warnOnce("authMode 'scramSha256' without a getScramSecret hook: every login fails with 28P01 (validateCredentials is not used in this mode)", 'PG_GATEWAY_SCRAM_SECRET');
  }
  if (authMode === 'certificate' && !tls && !tlsCallback && !allowCertificateWithoutTls) {
    throw new MisconfiguredCertificateAuth();
  }
  integerOption(options, 'maxMessageSize', 1, 0xffffffff);
  // Milliseconds; Node's timers cannot wait longer than 2^31 - 1 ms.
  integerOption(options, 'authTimeout', 1, MAX_TIMEOUT_MS);
  integerOption(options, 'writeTimeout', 0, MAX_TIMEOUT_MS);
  integerOption(options, 'maxConnections', 1, 1_000_000);
  if (options.stats !== undefined && typeof options.stats !== 'boolean') {
    throw new TypeError(`option stats must be a boolean, got ${describe(options.stats)}`);
  }
  const logLevel = logLevelOption(options);
  return {
    authMode,
    serverVersion: options.serverVersion,
    serverParameters: options.serverParameters,
    hooks: HOOK_NAMES.filter((name) => typeof options[name] === 'function'),
    maxMessageSize: options.maxMessageSize,
    authTimeout: options.authTimeout,
    writeTimeout: options.writeTimeout,
    maxConnections: options.maxConnections,
    stats: options.stats,
    logLevel,
    tls,
    tlsCallback,
  };
}

/**
 * A key that is no option is ignored, as by pg-gateway 0.2.4, but said once: a typo such as
 * `authmode` would otherwise change the authentication mode without a word.
 */
function warnUnknownOptions(options) {
  for (const key of Object.keys(options)) {
    if (KNOWN_OPTIONS.has(key)) continue;
    const near = OPTION_NAMES.find((name) => name.toLowerCase() === key.toLowerCase() || editDistance(name, key) <= 2);
    warnOnce(`unknown option '${key}' is ignored${near ? ` (did you mean '${near}'?)` : ''}`, 'PG_GATEWAY_UNKNOWN_OPTION');
  }
}

function editDistance(a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}

/** A value's kind, for error messages: 'a number (5)', 'an array', 'null'. */
function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `a string ('${value.length > 40 ? `${value.slice(0, 40)}...` : value}')`;
  if (typeof value === 'object') return 'an object';
  return `${/^[aeiou]/.test(typeof value) ? 'an' : 'a'} ${typeof value}${typeof value === 'number' || typeof value === 'boolean' ? ` (${value})` : ''}`;
}

/** The longest delay a Node timer can wait (and so the longest timeout option). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

function integerOption(options, name, min, max) {
  const value = options[name];
  if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) {
    throw new TypeError(`option ${name} must be an integer from ${min} to ${max}${name.endsWith('Timeout') ? ' (milliseconds)' : ''}`);
  }
}

/**
 * `authMode: 'certificate'` without `tls`. pg-gateway 0.2.4 accepts it and refuses each client
 * with `FATAL 08000`; `createServer` reports it at once, `new PostgresConnection` behaves as 0.2.4
 * (see `connection.js`).
 */
class MisconfiguredCertificateAuth extends TypeError {
  constructor() {
    super("authMode 'certificate' needs the tls option (with tls.ca, the CA that signs client certificates)");
  }
}

const PEM_FIELDS = ['key', 'cert', 'ca'];

/** pg-gateway's TlsOptions (PEM Buffers) as the binding takes them; `where` names the source. */
function tlsOptions(value, where) {
  if (value === null || typeof value !== 'object') {
    throw new TypeError(`${where} must be an object { key, cert, ca?, passphrase? } of PEM Buffers`);
  }
  const out = {};
  for (const field of PEM_FIELDS) {
    const pem = value[field];
    if (pem === undefined || pem === null) {
      if (field !== 'ca') throw new TypeError(`${where}.${field} is required (a PEM Buffer)`);
      continue;
    }
    if (typeof pem === 'string') out[field] = Buffer.from(pem);
    else if (ArrayBuffer.isView(pem)) out[field] = Buffer.from(pem.buffer, pem.byteOffset, pem.byteLength);
    else throw new TypeError(`${where}.${field} must be a Buffer or string in PEM format, got ${describe(pem)}`);
    if (!out[field].includes('-----BEGIN ')) {
      // The usual slip: the file's name where its contents belong.
      const text = out[field].toString('utf8', 0, 200);
      const path = !text.includes('\n') && /^[\w./~:\\ -]+$/.test(text);
      throw new TypeError(`${where}.${field} is not PEM (no '-----BEGIN' line)${path ? `; it looks like a file name: pass fs.readFileSync('${text}')` : ''}`);
    }
  }
  if (value.passphrase !== undefined) out.passphrase = String(value.passphrase);
  return out;
}

/** Severities of PostgreSQL's ErrorResponse and NoticeResponse. */
const SEVERITIES = ['ERROR', 'FATAL', 'PANIC', 'WARNING', 'NOTICE', 'DEBUG', 'INFO', 'LOG'];
/** What a throw may carry: it ends the statement (ERROR) or the session (FATAL, PANIC). */
const THROWN_SEVERITIES = ['ERROR', 'FATAL', 'PANIC'];

/**
 * pg-gateway's BackendError with every field a string, from whatever a user passed to
 * `sendError` (`sent`) or threw. What cannot be sent as given is sent as the nearest thing that
 * can (a 0.2.4 program must not crash on it) and said once as a warning.
 */
function normalizeError(err, defaultSeverity = 'ERROR', { sent = false } = {}) {
  // Whatever was thrown is read with care: a getter or toString that throws must still end in
  // an ErrorResponse, not in an exception out of a socket callback.
  try {
    return readError(err, defaultSeverity, sent ? 'sendError' : 'a hook threw an error that');
  } catch {
    return { severity: defaultSeverity, code: 'XX000', message: 'a hook failed with an error that cannot be read' };
  }
}

function readError(err, defaultSeverity, where) {
  const source = err !== null && typeof err === 'object' ? err : { message: String(err) };
  const thrown = where !== 'sendError';
  let severity = source.severity === undefined ? defaultSeverity : String(source.severity);
  if (!SEVERITIES.includes(severity)) {
    warnOnce(`${where}: severity '${severity}' is not one of ${SEVERITIES.join(', ')}; sent as ${defaultSeverity}`, 'PG_GATEWAY_BAD_ERROR');
    severity = defaultSeverity;
  } else if (thrown && !THROWN_SEVERITIES.includes(severity)) {
    warnOnce(`${where} has severity '${severity}': a throw ends the statement, so the client gets ERROR (send a ${severity} with connection.sendError and go on)`, 'PG_GATEWAY_BAD_ERROR');
    severity = 'ERROR';
  }
  let code = 'XX000';
  if (typeof source.code === 'string' && /^[0-9A-Z]{5}$/.test(source.code)) code = source.code;
  else if (source.code !== undefined && !(thrown && err instanceof Error)) {
    // (Node's own errors carry codes such as 'ECONNRESET': XX000 is right for those, silently.)
    warnOnce(`${where}: code ${JSON.stringify(source.code)} is not a SQLSTATE (five digits or capital letters, such as '22012'); sent as XX000`, 'PG_GATEWAY_BAD_ERROR');
  }
  let message;
  if (source.message !== undefined && source.message !== null) message = String(source.message);
  else if (err === null || typeof err !== 'object') message = String(err);
  else {
    warnOnce(`${where} has no message; sent as 'unknown error'`, 'PG_GATEWAY_BAD_ERROR');
    message = 'unknown error';
  }
  const out = { severity, code, message };
  for (const field of ERROR_FIELDS) {
    if (source[field] !== undefined && source[field] !== null) out[field] = String(source[field]);
  }
  return out;
}

/**
 * What `getScramSecret` returned, as the binding takes it: a verifier string in PostgreSQL's
 * format, `{ password }`, `{ iterations, salt, storedKey, serverKey }` (Uint8Arrays or base64
 * strings), or null/undefined for an unknown user.
 *
 * A secret that cannot be used is what PostgreSQL calls an invalid stored secret: the client
 * fails exactly as with a wrong password (telling it more would tell it the user exists), and
 * the operator gets a process warning saying what is wrong (once per distinct problem).
 */
function scramSecretReply(secret) {
  if (secret === null || secret === undefined) return { value: 0 };
  let verifier;
  if (typeof secret === 'string') {
    verifier = secret;
  } else if (typeof secret === 'object' && typeof secret.password === 'string' && secret.password !== '') {
    return { value: 0, scramPassword: secret.password };
  } else if (typeof secret === 'object' && secret.password === '') {
    // PostgreSQL stores no secret for an empty password, so nobody logs in with one.
    warnOnce('getScramSecret returned an empty password; the login fails as with a wrong password', 'PG_GATEWAY_SCRAM_SECRET');
    return { value: 0 };
  } else if (typeof secret === 'object') {
    const { iterations, salt, storedKey, serverKey } = secret;
    const part = (value) => {
      if (typeof value === 'string') return value;
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
      return undefined;
    };
    const parts = [part(salt), part(storedKey), part(serverKey)];
    if (Number.isInteger(iterations) && !parts.includes(undefined)) {
      verifier = `SCRAM-SHA-256$${iterations}:${parts[0]}$${parts[1]}:${parts[2]}`;
    }
  }
  const problem = verifier === undefined
    ? 'getScramSecret must return a SCRAM verifier string, { password }, { iterations, salt, storedKey, serverKey } (Uint8Arrays or base64 strings), or null'
    : binding.scramVerifierProblem(verifier);
  if (problem) {
    warnOnce(`${problem}; the login fails as with a wrong password`, 'PG_GATEWAY_SCRAM_SECRET');
    return { value: 0 };
  }
  return { value: 0, scramVerifier: verifier };
}

const warned = new Set();

/** A process warning of this library, once per distinct message. */
function warnOnce(message, code) {
  if (warned.has(message)) return;
  warned.add(message);
  process.emitWarning(message, { type: 'PgGatewayWarning', code });
}

function toBytes(data) {
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return data;
  throw new TypeError('data must be a Buffer, Uint8Array, ArrayBuffer or string');
}

/** A native state snapshot as pg-gateway's `State`. */
function toState(snapshot) {
  let clientInfo;
  if (snapshot.clientParameters) {
    const parameters = {};
    const flat = snapshot.clientParameters;
    for (let i = 0; i + 1 < flat.length; i += 2) parameters[flat[i]] = flat[i + 1];
    clientInfo = { majorVersion: snapshot.clientMajorVersion, minorVersion: snapshot.clientMinorVersion, parameters };
  }
  let tlsInfo;
  if (snapshot.tls) {
    tlsInfo = { sniServerName: snapshot.sniServerName ?? undefined };
    if (snapshot.alpnProtocol) tlsInfo.alpnProtocol = snapshot.alpnProtocol;
    if (snapshot.clientCertificate) tlsInfo.clientCertificate = new Uint8Array(snapshot.clientCertificate);
  }
  return {
    hasStarted: snapshot.hasStarted,
    isAuthenticated: snapshot.isAuthenticated,
    clientInfo,
    tlsInfo,
    transactionStatus: snapshot.transactionStatus,
  };
}

/** `validateCredentials`'s first argument, from a native `validate` event. */
function credentials(event) {
  if (event.authMode === 'md5Password') {
    return { authMode: 'md5Password', user: event.user, hash: event.secret, salt: new Uint8Array(event.salt) };
  }
  return { authMode: 'cleartextPassword', user: event.user, password: event.secret };
}

/**
 * The `then` method of a hook's result, or undefined if it is not a thenable. Reading it may
 * throw (a getter, a revoked Proxy): callers read it inside their `try`.
 */
function thenOf(value) {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return undefined;
  const then = value.then;
  return typeof then === 'function' ? then : undefined;
}

/** A promise for a thenable whose `then` was already read (so it is not read twice). */
function adopt(value, then) {
  return new Promise((resolve, reject) => then.call(value, resolve, reject));
}

/** Calls `fn` and hands `done(value, error)` its result: at once if it returned a plain value
 * or threw, later if it returned a thenable (a promise is returned then). Errors are
 * normalised to BackendError objects; nothing escapes as an exception or a rejection. */
function settle(fn, done) {
  let result;
  let then;
  try {
    result = fn();
    then = thenOf(result);
  } catch (err) {
    done(undefined, normalizeError(err), err);
    return undefined;
  }
  if (then === undefined) {
    done(result, undefined);
    return undefined;
  }
  return adopt(result, then).then((value) => done(value, undefined), (err) => done(undefined, normalizeError(err), err));
}

/** What a hook threw, as the client will see it; reported if the client sees XX000. */
function failedHook(connection, hook, err) {
  const error = normalizeError(err);
  reportHookFailure(connection, hook, error, err);
  return error;
}

/**
 * Offers the whole messages in `data` from `start` on to `onMessage`, in order, stopping at the
 * first one it does not handle (the built-ins answer that one), once the connection is
 * detached, or when the output backs up (`sink.backedUp()` returns what is unsent then; the
 * rest is offered again once the client has read). `handled` were handled before. Synchronous
 * answers run back to back; the first promise makes the rest wait and is returned.
 * `sink.messagesDone(count, error, backlog)` hears the outcome exactly once. The frames' own
 * length fields delimit them: 4 bytes before startup, a type byte and 4 after.
 */
function offerMessages(onMessage, data, start, handled, state, connection, sink) {
  const typed = state.hasStarted;
  while (start < data.length) {
    if (handled > 0) {
      const backlog = sink.backedUp();
      if (backlog !== undefined) {
        sink.messagesDone(handled, undefined, backlog);
        return undefined;
      }
    }
    const end = typed ? start + 1 + data.readInt32BE(start + 1) : start + data.readInt32BE(start);
    let result;
    let then;
    try {
      result = onMessage(start === 0 && end === data.length ? data : data.subarray(start, end), state, connection);
      then = thenOf(result);
    } catch (err) {
      sink.messagesDone(handled, failedHook(connection, 'onMessage', err));
      return undefined;
    }
    if (then !== undefined) {
      return adopt(result, then).then(
        (ok) => {
          if (!ok || connection._detached || end >= data.length) {
            sink.messagesDone(ok ? handled + 1 : handled, undefined);
            return undefined;
          }
          return offerMessages(onMessage, data, end, handled + 1, state, connection, sink);
        },
        (err) => sink.messagesDone(handled, failedHook(connection, 'onMessage', err)),
      );
    }
    if (!result) break;
    handled += 1;
    start = end;
    if (connection._detached) break;
  }
  sink.messagesDone(handled, undefined);
  return undefined;
}

/** The address fields of a `net.Socket`, copied from a socket or a native connection. */
function copyAddresses(target, source) {
  for (const name of ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort']) {
    target[name] = source[name] ?? undefined;
  }
}

module.exports = {
  scramSecretReply, warnOnce,
  nativeOptions, normalizeError, failedHook, tlsOptions, toBytes, toState, credentials, settle, offerMessages, copyAddresses,
  HOOK_NAMES, MisconfiguredCertificateAuth,
};

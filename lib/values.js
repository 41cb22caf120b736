'use strict';
// Conversions between what users pass (pg-gateway's shapes) and what the binding takes.

const HOOK_NAMES = ['onMessage', 'onStartup', 'validateCredentials', 'onAuthenticated'];
const AUTH_MODES = ['none', 'cleartextPassword', 'md5Password', 'certificate'];
const DRIVERS = ['js', 'native'];
const ERROR_FIELDS = [
  'detail', 'hint', 'position', 'internalPosition', 'internalQuery', 'where', 'schema', 'table',
  'column', 'dataType', 'constraint', 'file', 'line', 'routine',
];

/** Checks pg-gateway options and turns them into the plain object the binding takes. */
function nativeOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('PostgresConnection options must be an object');
  }
  const authMode = options.authMode ?? 'md5Password';
  if (!AUTH_MODES.includes(authMode)) {
    throw new TypeError(`unknown authMode '${authMode}': expected one of ${AUTH_MODES.map((m) => `'${m}'`).join(', ')}`);
  }
  for (const name of [...HOOK_NAMES, 'onTlsUpgrade']) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`option ${name} must be a function`);
    }
  }
  if (options.serverVersion !== undefined && typeof options.serverVersion !== 'string') {
    throw new TypeError('option serverVersion must be a string');
  }
  if (options.driver !== undefined && !DRIVERS.includes(options.driver)) {
    throw new TypeError(`unknown driver '${options.driver}': expected 'js' or 'native'`);
  }
  if (options.tls !== undefined) {
    throw new Error('pg-gateway-native: the tls option is not supported yet; TLS arrives in the next release');
  }
  for (const name of ['maxMessageSize', 'authTimeout']) {
    const value = options[name];
    if (value !== undefined && !(Number.isInteger(value) && value > 0 && value <= 0xffffffff)) {
      throw new TypeError(`option ${name} must be a positive integer`);
    }
  }
  return {
    authMode,
    serverVersion: options.serverVersion,
    serverParameters: options.serverParameters,
    hooks: HOOK_NAMES.filter((name) => typeof options[name] === 'function'),
    maxMessageSize: options.maxMessageSize,
    authTimeout: options.authTimeout,
  };
}

/** pg-gateway's BackendError with every field a string, from whatever a user passed or threw. */
function normalizeError(err, defaultSeverity = 'ERROR') {
  const source = err !== null && typeof err === 'object' ? err : { message: String(err) };
  const out = {
    severity: typeof source.severity === 'string' ? source.severity : defaultSeverity,
    code: typeof source.code === 'string' && /^[0-9A-Z]{5}$/.test(source.code) ? source.code : 'XX000',
    message: source.message === undefined ? String(err) : String(source.message),
  };
  for (const field of ERROR_FIELDS) {
    if (source[field] !== undefined && source[field] !== null) out[field] = String(source[field]);
  }
  return out;
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
  const tlsInfo = snapshot.tls ? { sniServerName: snapshot.sniServerName ?? undefined } : undefined;
  return { hasStarted: snapshot.hasStarted, isAuthenticated: snapshot.isAuthenticated, clientInfo, tlsInfo };
}

/** `validateCredentials`'s first argument, from a native `validate` event. */
function credentials(event) {
  if (event.authMode === 'md5Password') {
    return { authMode: 'md5Password', user: event.user, hash: event.secret, salt: new Uint8Array(event.salt) };
  }
  return { authMode: 'cleartextPassword', user: event.user, password: event.secret };
}

/** Calls `fn` and hands `done(value, error)` its result: at once if it returned a plain value
 * or threw, later if it returned a promise (the promise is returned then). Errors are
 * normalised to BackendError objects; nothing escapes as an exception or a rejection. */
function settle(fn, done) {
  let result;
  try {
    result = fn();
  } catch (err) {
    done(undefined, normalizeError(err));
    return undefined;
  }
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    return Promise.resolve(result).then((value) => done(value, undefined), (err) => done(undefined, normalizeError(err)));
  }
  done(result, undefined);
  return undefined;
}

module.exports = { nativeOptions, normalizeError, toBytes, toState, credentials, settle, HOOK_NAMES };

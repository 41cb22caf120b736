'use strict';
// pg-gateway 0.2.4's helper exports.

const nodeCrypto = require('node:crypto');
const binding = require('./binding.js');
const { toBytes } = require('./values.js');

/** `'md5' + md5hex(md5hex(password + user) + salt)`, exactly what libpq sends. */
async function hashMd5Password(user, password, salt) {
  return binding.hashMd5PasswordSync(String(user), String(password), toBytes(salt));
}

/** Lowercase hex MD5 digest. */
async function md5(value) {
  return nodeCrypto.createHash('md5').update(value).digest('hex');
}

function generateMd5Salt() {
  return nodeCrypto.getRandomValues(new Uint8Array(4));
}

/**
 * A SCRAM-SHA-256 verifier for `password`, exactly as PostgreSQL stores it in
 * `pg_authid.rolpassword`: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
 * `salt`: a Uint8Array or base64 string (default: 16 random bytes).
 */
function createScramSha256Secret(password, { iterations = 4096, salt } = {}) {
  if (typeof password !== 'string') throw new TypeError('createScramSha256Secret: password must be a string');
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 0x7fffffff) {
    throw new RangeError('createScramSha256Secret: iterations must be an integer from 1 to 2147483647');
  }
  let saltBytes;
  if (salt === undefined) saltBytes = nodeCrypto.randomBytes(16);
  else if (typeof salt === 'string') saltBytes = Buffer.from(salt, 'base64');
  else if (salt instanceof Uint8Array) saltBytes = salt;
  else throw new TypeError('createScramSha256Secret: salt must be a Uint8Array or a base64 string');
  if (saltBytes.length === 0) throw new TypeError('createScramSha256Secret: salt must not be empty');
  return binding.createScramSha256Secret(password, saltBytes, iterations);
}

/** A StartupMessage (no type byte) for `clientInfo`, e.g. to replay it to an upstream. */
function createStartupMessage(clientInfo) {
  const flat = [];
  for (const [name, value] of Object.entries(clientInfo.parameters ?? {})) {
    if (value !== undefined) flat.push(String(name), String(value));
  }
  return binding.encodeStartupMessage(clientInfo.majorVersion ?? 3, clientInfo.minorVersion ?? 0, flat);
}

/** A TypeScript-style numeric enum object, reverse mapping included, as 0.2.4 ships. */
function numericEnum(entries) {
  const result = {};
  for (const [name, value] of entries) {
    result[(result[name] = value)] = name;
  }
  return result;
}

const FrontendMessageCode = numericEnum([
  ['Query', 81], ['Parse', 80], ['Bind', 66], ['Execute', 69], ['FunctionCall', 70], ['Flush', 72],
  ['Close', 67], ['Describe', 68], ['CopyFromChunk', 100], ['CopyDone', 99], ['CopyData', 100],
  ['CopyFail', 102], ['Password', 112], ['Sync', 83], ['Terminate', 88],
]);

const BackendMessageCode = numericEnum([
  ['DataRow', 68], ['ParseComplete', 49], ['BindComplete', 50], ['CloseComplete', 51],
  ['CommandComplete', 67], ['ReadyForQuery', 90], ['NoData', 110], ['NotificationResponse', 65],
  ['AuthenticationResponse', 82], ['ParameterStatus', 83], ['BackendKeyData', 75],
  ['ErrorMessage', 69], ['NoticeMessage', 78], ['RowDescriptionMessage', 84],
  ['ParameterDescriptionMessage', 116], ['PortalSuspended', 115], ['ReplicationStart', 87],
  ['EmptyQuery', 73], ['CopyIn', 71], ['CopyOut', 72], ['CopyDone', 99], ['CopyData', 100],
]);

module.exports = {
  hashMd5Password, md5, generateMd5Salt, createScramSha256Secret, createStartupMessage, FrontendMessageCode,
  BackendMessageCode,
};

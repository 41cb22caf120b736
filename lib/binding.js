'use strict';
// Loads the native addon built by scripts/build.js.

const path = require('node:path');

const file = path.join(__dirname, '..', 'pg-gateway-native.node');
try {
  module.exports = require(file);
} catch (err) {
  const hint = err && err.code === 'MODULE_NOT_FOUND'
    ? 'The native addon has not been built: run `npm run build` (needs Rust from https://rustup.rs).'
    : `The native addon could not be loaded: ${err && err.message}`;
  const wrapped = new Error(`pg-gateway-native: ${hint}`);
  wrapped.cause = err;
  throw wrapped;
}

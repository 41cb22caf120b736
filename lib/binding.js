'use strict';
// Loads the native addon: one built from source in the package directory (`npm run build`)
// if there is one, or else the prebuilt one of this platform's package
// (`pg-gateway-native-<platform>`, an optional dependency npm installs only where it fits).

const fs = require('node:fs');
const path = require('node:path');

/** This platform as the prebuilt packages name it: linux-x64-gnu, darwin-arm64, win32-x64-msvc ... */
function platformName() {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** Whether the C library is musl (Alpine): the glibc build does not load there. */
function isMusl() {
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
  if (report?.header) return !report.header.glibcVersionRuntime;
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    return false;
  }
}

function load() {
  const local = path.join(__dirname, '..', 'pg-gateway-native.node');
  if (fs.existsSync(local)) return require(local);
  const name = platformName();
  const pkg = `pg-gateway-native-${name}`;
  let prebuilt;
  try {
    prebuilt = require.resolve(`${pkg}/pg-gateway-native.${name}.node`);
  } catch {
    throw new Error(
      `pg-gateway-native: no native addon for this platform (${name}). Either install the prebuilt package `
      + `(npm install ${pkg}; npm skips it when --omit=optional or --no-optional is set), or build from source `
      + `with Rust (https://rustup.rs): npm run build --prefix ${path.join(__dirname, '..')}`,
    );
  }
  return require(prebuilt);
}

try {
  module.exports = load();
} catch (err) {
  if (err.message.startsWith('pg-gateway-native:')) throw err;
  const wrapped = new Error(`pg-gateway-native: the native addon could not be loaded: ${err && err.message}`);
  wrapped.cause = err;
  throw wrapped;
}

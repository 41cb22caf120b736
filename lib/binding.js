'use strict';
// Loads the native addon: one built from source in the package directory (`npm run build`)
// if there is one, or else the prebuilt one of this platform's package
// (`pg-gateway-native-<platform>`, an optional dependency npm installs only where it fits).

const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.join(__dirname, '..');

/**
 * The prebuilt packages, each with a literal require (so that bundlers and file tracers such
 * as @vercel/nft see them). Only those published are in package.json's optionalDependencies.
 */
const PREBUILT = {
  'linux-x64-gnu': () => require('pg-gateway-native-linux-x64-gnu/pg-gateway-native.linux-x64-gnu.node'),
  'linux-x64-musl': () => require('pg-gateway-native-linux-x64-musl/pg-gateway-native.linux-x64-musl.node'),
  'linux-arm64-gnu': () => require('pg-gateway-native-linux-arm64-gnu/pg-gateway-native.linux-arm64-gnu.node'),
  'darwin-arm64': () => require('pg-gateway-native-darwin-arm64/pg-gateway-native.darwin-arm64.node'),
  'darwin-x64': () => require('pg-gateway-native-darwin-x64/pg-gateway-native.darwin-x64.node'),
  'win32-x64-msvc': () => require('pg-gateway-native-win32-x64-msvc/pg-gateway-native.win32-x64-msvc.node'),
};

/** Whether the C library is musl (Alpine), as napi-rs tells: ldd's text, then Node's report. */
function isMusl() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {}
  if (typeof process.report?.getReport !== 'function') return false;
  process.report.excludeNetwork = true;
  // A wrong guess costs nothing: both libc packages are tried, this one first.
  return !process.report.getReport().header?.glibcVersionRuntime;
}

/** This platform's prebuilt names, most likely first: linux-x64-gnu, darwin-arm64, ... */
function platformNames() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const libcs = isMusl() ? ['musl', 'gnu'] : ['gnu', 'musl'];
    return libcs.map((libc) => `linux-${arch}-${libc}`);
  }
  if (platform === 'win32') return [`win32-${arch}-msvc`];
  return [`${platform}-${arch}`];
}

function published() {
  try {
    return require('../package.json').optionalDependencies ?? {};
  } catch {
    return {};
  }
}

function load() {
  const local = path.join(packageDir, 'pg-gateway-native.node');
  if (fs.existsSync(local)) return require(local);
  const names = platformNames();
  for (const name of names) {
    const loadPrebuilt = PREBUILT[name];
    if (!loadPrebuilt) continue;
    try {
      return loadPrebuilt();
    } catch (err) {
      if (err.code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  const build = `build it from source with Rust (https://rustup.rs): npm run build --prefix ${packageDir}`;
  const pkg = `pg-gateway-native-${names[0]}`;
  if (published()[pkg]) {
    throw new Error(`pg-gateway-native: no native addon for this platform (${names[0]}). Either install the prebuilt package `
      + `(npm install ${pkg}; npm skips it with --omit=optional or --no-optional), or ${build}`);
  }
  throw new Error(`pg-gateway-native: no prebuilt addon is published for this platform (${names[0]}) yet: ${build}`);
}

try {
  module.exports = load();
} catch (err) {
  if (err.message.startsWith('pg-gateway-native:')) throw err;
  const wrapped = new Error(`pg-gateway-native: the native addon could not be loaded: ${err && err.message}`);
  wrapped.cause = err;
  throw wrapped;
}

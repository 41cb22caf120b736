#!/usr/bin/env node
// Builds the native addon from source with cargo and puts it where index.js loads it.
// It runs on `npm install` in a clone, and by hand (`npm run build`) where no prebuilt addon
// package fits; it needs a Rust toolchain.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const profile = process.env.PG_GATEWAY_NATIVE_PROFILE || 'release';
const started = Date.now();
console.error(`pg-gateway-native: building the native addon (cargo, profile ${profile}) ...`);
const args = ['build', '--lib', '--profile', profile];
const result = spawnSync('cargo', args, { cwd: root, stdio: 'inherit' });
if (result.error) {
  console.error(`pg-gateway-native: could not run cargo (${result.error.message}). Install Rust from https://rustup.rs and retry.`);
  process.exit(1);
}
if (result.status !== 0) process.exit(result.status ?? 1);

const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
const libName = { darwin: 'libpg_gateway_native.dylib', win32: 'pg_gateway_native.dll' }[process.platform]
  ?? 'libpg_gateway_native.so';
const built = path.join(targetDir, profile === 'dev' ? 'debug' : profile, libName);
const dest = path.join(root, 'pg-gateway-native.node');
// Copy to a temporary name, then rename: a running process that has the old file mapped keeps it.
fs.copyFileSync(built, `${dest}.tmp`);
fs.renameSync(`${dest}.tmp`, dest);
console.error(`pg-gateway-native: built ${path.relative(root, dest)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);

#!/usr/bin/env node
// Makes the npm tarballs as they are published: the main package, and the prebuilt addon of
// each platform this machine can build (linux-x64-gnu, with cargo-zigbuild against glibc 2.17).
//
//   node scripts/pack.js [--out DIR] [--no-build]
//
// The main package's published package.json differs from the checkout's: no install script
// (npm 12 blocks dependencies' install scripts by default, and a prebuilt needs none), no
// devDependencies, and an optional dependency on each platform package packed here, which npm
// installs only where its os/cpu/libc fit. Elsewhere lib/binding.js says what to do.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const root = path.join(__dirname, '..');
/** The oldest glibc the linux-x64-gnu build may need (that of RHEL 7 / CentOS 7, as napi-rs). */
const GLIBC_FLOOR = '2.17';
/** Platforms this machine builds: package suffix -> how. */
const BUILDS = {
  'linux-x64-gnu': { target: `x86_64-unknown-linux-gnu.${GLIBC_FLOOR}`, dir: 'x86_64-unknown-linux-gnu', lib: 'libpg_gateway_native.so' },
};

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(root, 'target', 'npm-pack') },
    build: { type: 'boolean', default: true },
    'no-build': { type: 'boolean', default: false },
  },
});

function run(command, argv, options = {}) {
  const result = spawnSync(command, argv, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${argv.join(' ')} failed with ${result.status}`);
  return result.stdout;
}

/** The newest GLIBC_x.y symbol version `file` needs. */
function glibcNeeded(file) {
  const versions = [...run('objdump', ['-T', file]).matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const newest = versions.at(-1);
  return newest ? `${newest[0]}.${newest[1]}` : '0.0';
}

const older = (a, b) => {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  return x[0] < y[0] || (x[0] === y[0] && x[1] <= y[1]);
};

function buildPlatform(name, { target, dir, lib }) {
  const dest = path.join(root, 'npm', name, `pg-gateway-native.${name}.node`);
  if (args.build && !args['no-build']) {
    const started = Date.now();
    console.error(`pack: cargo zigbuild --profile dist --lib --target ${target} ...`);
    const result = spawnSync('cargo', ['zigbuild', '--profile', 'dist', '--lib', '--target', target], { cwd: root, stdio: 'inherit' });
    if (result.status !== 0) {
      throw new Error('cargo zigbuild failed: it needs cargo-zigbuild (cargo install cargo-zigbuild) and zig (pip install ziglang)');
    }
    const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
    fs.copyFileSync(path.join(targetDir, dir, 'dist', lib), dest);
    console.error(`pack: built ${name} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  if (!fs.existsSync(dest)) throw new Error(`${dest} is missing (run without --no-build)`);
  const needed = glibcNeeded(dest);
  if (!older(needed, GLIBC_FLOOR)) throw new Error(`${name} needs glibc ${needed}, above the floor ${GLIBC_FLOOR}`);
  console.error(`pack: ${name} needs glibc ${needed} at most (floor ${GLIBC_FLOOR})`);
}

/** `npm pack` of `dir` into args.out; returns the tarball's path. */
function pack(dir) {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', args.out], { cwd: dir }));
  return path.join(args.out, info.filename);
}

/** The main package in a staging directory, with its published package.json. */
function stageMain(platforms) {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const [listing] = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root }));
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'pggn-stage-'));
  for (const { path: file } of listing.files) {
    fs.mkdirSync(path.dirname(path.join(stage, file)), { recursive: true });
    fs.copyFileSync(path.join(root, file), path.join(stage, file));
  }
  delete manifest.scripts.install;
  delete manifest.scripts.test;
  delete manifest.scripts.lint;
  delete manifest.scripts.bench;
  delete manifest.devDependencies;
  manifest.optionalDependencies = Object.fromEntries(platforms.map((name) => [`pg-gateway-native-${name}`, manifest.version]));
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return stage;
}

fs.mkdirSync(args.out, { recursive: true });
const platforms = Object.keys(BUILDS);
for (const name of platforms) buildPlatform(name, BUILDS[name]);
const tarballs = [];
for (const name of platforms) {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'npm', name, 'package.json'), 'utf8'));
  const main = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  if (manifest.version !== main.version) throw new Error(`npm/${name} is version ${manifest.version}, the package ${main.version}`);
  fs.copyFileSync(path.join(root, 'LICENSE'), path.join(root, 'npm', name, 'LICENSE'));
  tarballs.push(pack(path.join(root, 'npm', name)));
}
const stage = stageMain(platforms);
tarballs.unshift(pack(stage));
fs.rmSync(stage, { recursive: true, force: true });
for (const file of tarballs) console.error(`pack: ${path.basename(file)} ${(fs.statSync(file).size / 1024).toFixed(0)} KiB`);
process.stdout.write(`${JSON.stringify(tarballs)}\n`);

// The package as a user meets it: packed as published (scripts/pack.js: the main package and
// the prebuilt linux-x64-gnu addon, built with cargo-zigbuild against glibc 2.17), published
// to a registry on loopback (verdaccio), installed into a new project with cargo out of PATH,
// then serving psql from ESM and from CommonJS, and `npx pg-gateway-native --help`.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root, run, psql } from './helpers.mjs';
import { freePort } from './postgres.mjs';

/** PATH without the directories that hold cargo or rustc: a machine without Rust. */
function pathWithoutRust() {
  return process.env.PATH.split(path.delimiter)
    .filter((dir) => dir && !existsSync(path.join(dir, 'cargo')) && !existsSync(path.join(dir, 'rustc')))
    .join(path.delimiter);
}

/** Starts verdaccio on `port` with its storage in `dir`; resolves once it answers. */
async function startRegistry(dir, port, onStart) {
  mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.yaml');
  writeFileSync(config, [
    `storage: ${path.join(dir, 'storage')}`,
    'auth:',
    '  htpasswd:',
    `    file: ${path.join(dir, 'htpasswd')}`,
    'uplinks: {}',
    'packages:',
    "  '**':",
    '    access: $all',
    '    publish: $authenticated',
    'log: { type: stdout, format: pretty, level: warn }',
    '',
  ].join('\n'));
  const bin = path.join(root, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
  const child = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  onStart(child);
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const deadline = Date.now() + 60000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`verdaccio exited: ${output}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/-/ping`);
      if (response.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`verdaccio did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return child;
}

/** A user on the registry (verdaccio makes one on first login); its token. */
async function registryToken(registry) {
  const response = await fetch(`${registry}/-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', password: 'ci-password', type: 'user', roles: [], date: new Date().toISOString() }),
  });
  const body = await response.json();
  assert.ok(body.token, `no token from the registry: ${JSON.stringify(body)}`);
  return body.token;
}

/** Runs a server script of the new project; resolves with its port once it listens. */
async function startScript(cwd, file, env) {
  const child = spawn(process.execPath, [file], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${output}`)), 30000);
    const onData = (d) => {
      output += d;
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(output);
      if (match) { clearTimeout(timer); resolve(Number(match[1])); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${file} exited with ${code}:\n${output}`)); });
  });
  return { port, stop: () => child.kill('SIGTERM') };
}

/** Every process the test started, killed at its end whatever happened. */
const children = new Set();

const SERVER = (load) => `${load}
const server = createServer({
  authMode: 'none',
  onQuery: ({ sql }) => ({ fields: [{ name: 'answer', type: 'text' }], rows: [[\`\${sql} from ${load.startsWith('import') ? 'esm' : 'cjs'}\`]] }),
});
const { port } = await server.listen(0);
console.log(\`listening on 127.0.0.1:\${port}\`);
`;

test('without Rust, npm install from a registry gives the prebuilt addon, which serves psql (ESM and CJS)', { timeout: 900000 }, async (t) => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'pggn-install-'));
  t.after(() => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  const packed = await run(process.execPath, [path.join(root, 'scripts', 'pack.js'), '--out', path.join(work, 'tarballs')], { timeout: 600000 });
  assert.equal(packed.code, 0, packed.stderr);
  const tarballs = JSON.parse(packed.stdout);
  for (const file of tarballs) t.diagnostic(`${path.basename(file)}: ${(statSync(file).size / 1024).toFixed(0)} KiB`);

  const port = await freePort();
  const registry = `http://127.0.0.1:${port}`;
  await startRegistry(path.join(work, 'registry'), port, (child) => children.add(child));
  const npmrc = path.join(work, 'npmrc');
  writeFileSync(npmrc, `registry=${registry}/\n//127.0.0.1:${port}/:_authToken=${await registryToken(registry)}\n`);
  // A user's environment, not the one of the `npm test` that runs us: none of npm's npm_*
  // variables (an outer registry setting would beat the npmrc), no cargo, fresh npm config.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) && key !== 'CARGO_TARGET_DIR'));
  Object.assign(env, {
    PATH: pathWithoutRust(),
    npm_config_userconfig: npmrc,
    npm_config_globalconfig: path.join(work, 'global-npmrc'),
    npm_config_registry: `${registry}/`,
    npm_config_cache: path.join(work, 'npm-cache'),
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  });
  const npm = (args, cwd, timeout = 300000) => run('npm', [...args, '--registry', `${registry}/`], { env, cwd, timeout, replaceEnv: true });
  for (const file of tarballs) {
    const published = await npm(['publish', file], work, 120000);
    assert.equal(published.code, 0, `npm publish ${path.basename(file)}:\n${published.stderr}`);
  }

  const project = path.join(work, 'project');
  mkdirSync(project);
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true }));
  const noCargo = await run('sh', ['-c', 'command -v cargo || echo none'], { env, replaceEnv: true });
  assert.equal(noCargo.stdout.trim(), 'none', 'cargo must be out of PATH for this test');
  const started = Date.now();
  const installed = await npm(['install', 'pg-gateway-native'], project);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(installed.code, 0, `npm install:\n${installed.stdout}${installed.stderr}`);
  t.diagnostic(`npm install pg-gateway-native took ${seconds.toFixed(1)} s without Rust`);

  const modules = path.join(project, 'node_modules');
  assert.ok(existsSync(path.join(modules, 'pg-gateway-native-linux-x64-gnu', 'pg-gateway-native.linux-x64-gnu.node')), 'the platform package');
  assert.ok(!existsSync(path.join(modules, 'pg-gateway-native', 'pg-gateway-native.node')), 'nothing was built');
  assert.doesNotMatch(installed.stderr, /install script|allowScripts/i, 'no install script to allow');

  const help = await run('npx', ['--no-install', 'pg-gateway-native', '--help'], { env, cwd: project, replaceEnv: true });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /serve\s+serve PGlite/);

  writeFileSync(path.join(project, 'server.mjs'), SERVER("import { createServer } from 'pg-gateway-native';"));
  writeFileSync(path.join(project, 'server.cjs'), `(async () => {\n${SERVER("const { createServer } = require('pg-gateway-native');")}\n})();\n`);
  for (const [file, flavour] of [['server.mjs', 'esm'], ['server.cjs', 'cjs']]) {
    const server = await startScript(project, file, env);
    try {
      const result = await psql(server.port, ['-Atc', 'select 1']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), `select 1 from ${flavour}`);
    } finally {
      server.stop();
    }
  }

  // Without the platform package (npm install --omit=optional, or a platform with none), the
  // error names the platform and the two ways out.
  rmSync(path.join(modules, 'pg-gateway-native-linux-x64-gnu'), { recursive: true });
  const missing = await run(process.execPath, ['-e', "require('pg-gateway-native')"], { env, cwd: project, replaceEnv: true });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /pg-gateway-native: no native addon for this platform \(linux-x64-gnu\)\. Either install the prebuilt package \(npm install pg-gateway-native-linux-x64-gnu/);
  assert.match(missing.stderr, /build it from source with Rust \(https:\/\/rustup\.rs\): npm run build --prefix /);
});

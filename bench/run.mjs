#!/usr/bin/env node
// The benchmark: pg-gateway-native against pg-gateway 0.2.4 (and direct PostgreSQL and
// PgBouncer for the proxy rows), each server in its own process, load from pgbench. After a
// discarded warm-up run, the variants of a point run interleaved (A B C, C B A, ...) and ratios
// are computed within the run: absolute numbers are noise on a shared 2-core machine, ratios
// measured side by side are not.
//
//   npm run bench                      # everything (about 16 minutes)
//   npm run bench -- --quick           # shorter runs, one round
//   npm run bench -- --only fixed,memory --duration 10 --rounds 3

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, copyFileSync, chownSync, statSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startPostgres } from '../__test__/postgres.mjs';
import { makeCertificates } from '../__test__/certs.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const require = createRequire(import.meta.url);
const OURS = path.join(root, 'index.js');
const THEIRS = require.resolve('pg-gateway');
const SCENARIOS = ['fixed', 'stats', 'query', 'rows', 'setup', 'pglite', 'serve', 'proxy', 'tls-proxy', 'memory'];

const HELP = `Benchmark pg-gateway-native against pg-gateway 0.2.4 (same run, interleaved, ratios).

Usage: npm run bench -- [options]

  --only <list>      scenarios, comma-separated: ${SCENARIOS.join(', ')} (default: all)
  --duration <s>     seconds per pgbench run (default 5; --quick: 2)
  --rounds <n>       interleaved rounds per point (default 2; --quick: 1)
  --quick            short runs for a smoke check
  -h, --help         this help

Needs pgbench and PostgreSQL's server binaries (apt-get install postgresql), and PgBouncer for
its row (apt-get install pgbouncer; the row is skipped with a note when it is missing). The
rows scenario builds bench/pgwire-server (a server on the Rust pgwire crate) with cargo.
Results are printed as tables and written to bench/results/<date>.json.`;

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const only = new Set((args.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()));
for (const name of only) {
  if (!SCENARIOS.includes(name)) {
    console.error(`unknown scenario '${name}'\n\n${HELP}`);
    process.exit(2);
  }
}
const DURATION = Number(args.duration ?? (args.quick ? 2 : 5));
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 2));
const started = Date.now();
const log = (line) => console.error(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);

const scratch = mkdtempSync(path.join(os.tmpdir(), 'pggn-bench-'));
const selectOne = path.join(scratch, 'select1.sql');
writeFileSync(selectOne, 'SELECT 1;\n');
const children = new Set();
const cleanups = [];
process.on('exit', () => { for (const child of children) child.kill('SIGKILL'); });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts a benchmark server process and waits for its "ready". */
async function startServer(script, argv, env = {}) {
  // Servers' own complaints (pg-gateway 0.2.4 logs every framing error) go to a log file.
  const logFile = openSync(path.join(scratch, `${script}-${argv[1]}.log`), 'a');
  const child = spawn(process.execPath, [path.join(here, 'servers', script), ...argv], {
    stdio: ['ignore', 'pipe', logFile], env: { ...process.env, ...env },
  });
  children.add(child);
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
    child.on('exit', (code) => reject(new Error(`${script} ${argv.join(' ')} exited with ${code} (see ${scratch})`)));
  });
  return { pid: child.pid, stop: () => { child.kill('SIGKILL'); children.delete(child); } };
}

function run(command, argv, env = {}, timeoutMs = (DURATION + 15) * 1000) {
  return new Promise((resolve) => {
    const child = spawn(command, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr: signal === 'SIGKILL' ? `hung: no answer, killed after ${timeoutMs / 1000} s` : stderr });
    });
  });
}

/** One pgbench run; TPS, or null with the reason when it failed. */
async function pgbench(target, { clients, mode = 'simple', connect = false, seconds = DURATION, builtin }) {
  const argv = ['-n', ...(builtin ? ['-b', builtin] : ['-f', selectOne]), '-T', String(seconds), '-c', String(clients), '-j', String(Math.min(clients, 2)),
    '-M', mode, '-h', target.host ?? '127.0.0.1', '-p', String(target.port), '-U', target.user ?? 'postgres'];
  if (connect) argv.push('-C');
  argv.push('postgres');
  const result = await run('pgbench', argv, { PGPASSWORD: target.password ?? 'postgres', PGSSLMODE: 'disable', ...target.env });
  const tps = /tps = ([\d.]+)/.exec(result.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(result.stdout);
  if (result.code !== 0 || !tps || (failed && Number(failed[1]) > 0)) {
    return { tps: null, error: (result.stderr.trim().split('\n').pop() || `exit ${result.code}`).slice(0, 80) };
  }
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(result.stdout)?.[1] ?? 0);
  return { tps: Number(tps[1]), transactions };
}

// CPU accounting, to show where a ratio's ceiling is: the server's own CPU time per
// transaction, and the whole machine's busy time per transaction (both in microseconds).
const TICK_US = 1e6 / 100; // USER_HZ
function processTicks(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return null;
  }
}
function machineBusyTicks() {
  const [, ...times] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = times.map(Number);
  return user + nice + system + irq + softirq + steal;
}

const results = [];
/** Variant sets already warmed up (see `point`). */
const warmed = new WeakSet();

/**
 * Measures one point: every variant once per round, rounds interleaved; mean TPS per variant.
 * `variants` maps a name to a pgbench target; `baseline` names the denominator of ratios.
 */
async function point(scenario, label, variants, options, baseline, rounds = ROUNDS) {
  const samples = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
  const serverCpu = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
  const machineCpu = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
  const errors = {};
  if (!warmed.has(variants)) {
    // A fresh server is slower at first (JIT tiers, PGlite's WebAssembly): one short,
    // discarded run per variant, so no variant pays for the warm-up in the measured rounds.
    warmed.add(variants);
    for (const target of Object.values(variants)) await pgbench(target, { ...options, seconds: 2 });
  }
  for (let round = 0; round < rounds; round++) {
    // A B C, then C B A: a drift during the point (a warming cache, a neighbour on the VM)
    // cancels out instead of always hitting the same variant.
    const order = round % 2 === 0 ? Object.entries(variants) : Object.entries(variants).reverse();
    for (const [name, target] of order) {
      if (errors[name]) continue; // failed once: not again in later rounds
      const serverBefore = target.pid ? processTicks(target.pid) : null;
      const machineBefore = machineBusyTicks();
      const { tps, transactions, error } = await pgbench(target, options);
      if (tps === null) {
        errors[name] = error;
        continue;
      }
      samples[name].push(tps);
      if (transactions > 0) {
        machineCpu[name].push(((machineBusyTicks() - machineBefore) * TICK_US) / transactions);
        const serverAfter = target.pid ? processTicks(target.pid) : null;
        if (serverBefore !== null && serverAfter !== null) serverCpu[name].push(((serverAfter - serverBefore) * TICK_US) / transactions);
      }
    }
  }
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  const row = { scenario, point: label, tps: {}, ratio: {}, errors, serverCpuUs: {}, machineCpuUs: {} };
  for (const name of Object.keys(variants)) {
    row.tps[name] = mean(samples[name]);
    row.serverCpuUs[name] = mean(serverCpu[name]);
    row.machineCpuUs[name] = mean(machineCpu[name]);
  }
  const base = row.tps[baseline];
  for (const name of Object.keys(variants)) {
    row.ratio[name] = base && row.tps[name] ? row.tps[name] / base : null;
  }
  results.push(row);
  const shown = Object.keys(variants).map((name) => `${name} ${fmt(row.tps[name])}${row.ratio[name] && name !== baseline ? ` (${row.ratio[name].toFixed(2)}x)` : ''}`);
  log(`${scenario} ${label}: ${shown.join(', ')}${Object.keys(errors).length ? `  errors: ${JSON.stringify(errors)}` : ''}`);
  return row;
}

const fmt = (tps) => (tps === null || tps === undefined ? 'failed' : `${Math.round(tps)}`);

/**
 * Resident memory of `pid` in KiB: `anon` is what the process allocated (heaps, stacks, JIT
 * code); `file` the pages of mapped files, mostly the node executable's own code. The latter
 * grows once, by up to 4 MiB, whenever a code path (V8's optimising compiler above all) first
 * runs, whichever connection triggers it: that is not memory per connection.
 */
function residentKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { anon: field('RssAnon'), file: field('RssFile') };
}

/**
 * Connects `count` authenticated idle clients; returns the server's anonymous RSS growth per
 * client (see `residentKiB`; the growth of file pages is logged).
 * With `raw`, the clients are plain (or TLS) sockets that only connect and send a startup
 * packet, for the reference server that speaks no protocol.
 */
async function idleMemory(server, port, count, ssl, { raw = false, user = 'bench', password = 'bench', label = '' } = {}) {
  const before = residentKiB(server.pid);
  const clients = [];
  const connect = raw ? () => rawIdleClient(port, ssl) : async () => {
    const client = new pg.Client({ host: '127.0.0.1', port, user, password, ssl });
    await client.connect();
    return { end: () => client.end() };
  };
  for (let i = 0; i < count; i += 50) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(50, count - i) }, connect)));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = residentKiB(server.pid);
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  log(`memory ${label}, ${count} idle connections: anonymous RSS +${after.anon - before.anon} KiB, file pages +${after.file - before.file} KiB`);
  return (after.anon - before.anon) / count;
}

/** Records a memory row: KiB per connection by variant, with ratios to `baseline`. */
function memoryRow(scenario, label, perConnection, baseline) {
  const base = perConnection[baseline];
  const ratio = {};
  for (const [name, kib] of Object.entries(perConnection)) ratio[name] = base && kib !== null ? kib / base : null;
  results.push({ scenario, point: label, kib: perConnection, ratio });
  log(`${scenario}, ${label}: ${Object.entries(perConnection).map(([n, k]) => `${n} ${k === null ? 'failed' : k.toFixed(1)}`).join(', ')}`);
}

async function rawIdleClient(port, ssl) {
  const body = Buffer.from('\0\x03\0\0user\0bench\0\0', 'latin1');
  const startup = Buffer.concat([Buffer.alloc(4), body]);
  startup.writeInt32BE(startup.length);
  const socket = ssl
    ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    : net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    socket.once(ssl ? 'secureConnect' : 'connect', resolve);
    socket.once('error', reject);
  });
  await new Promise((resolve) => socket.write(startup, resolve));
  return { end: async () => socket.destroy() };
}

const certs = makeCertificates();
const certDir = path.join(scratch, 'certs');
mkdirSync(certDir);
copyFileSync(certs.file('wildcard-key.pem'), path.join(certDir, 'server-key.pem'));
copyFileSync(certs.file('wildcard-cert.pem'), path.join(certDir, 'server-cert.pem'));
const tlsClientEnv = { PGSSLMODE: 'require', PGHOSTADDR: '127.0.0.1' };
const fixedBench = { user: 'bench', password: 'bench' };

console.error(`pg-gateway-native benchmark: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, ` +
  `${DURATION} s per run, ${ROUNDS} round(s), scenarios: ${[...only].join(', ')}`);

if (only.has('fixed') || only.has('setup')) {
  const ports = { theirs: await freePort(), ours: await freePort(), listener: await freePort(), oursTls: await freePort(), theirsTls: await freePort() };
  const servers = [
    await startServer('fixed.mjs', [THEIRS, ports.theirs]),
    await startServer('fixed.mjs', [OURS, ports.ours]),
    await startServer('fixed.mjs', [OURS, ports.listener, 'listener']),
    await startServer('fixed.mjs', [OURS, ports.oursTls], { CERT_DIR: certDir }),
    await startServer('fixed.mjs', [THEIRS, ports.theirsTls], { CERT_DIR: certDir }),
  ];
  const variants = {
    'pg-gateway': { port: ports.theirs, pid: servers[0].pid, ...fixedBench },
    'ours (js driver)': { port: ports.ours, pid: servers[1].pid, ...fixedBench },
    'ours (createServer)': { port: ports.listener, pid: servers[2].pid, ...fixedBench },
  };
  if (only.has('fixed')) {
    for (const clients of [1, 8, 32]) await point('fixed result, simple', `c=${clients}`, variants, { clients }, 'pg-gateway');
    for (const clients of [1, 8, 32]) await point('fixed result, extended', `c=${clients}`, variants, { clients, mode: 'extended' }, 'pg-gateway');
  }
  if (only.has('setup')) {
    await point('connection setup (-C), md5', 'c=8', variants, { clients: 8, connect: true }, 'pg-gateway');
    await point('connection setup (-C), md5 + TLS', 'c=8', {
      'pg-gateway': { port: ports.theirsTls, pid: servers[4].pid, ...fixedBench, host: 'a.db.example.com', env: tlsClientEnv },
      'ours (js driver)': { port: ports.oursTls, pid: servers[3].pid, ...fixedBench, host: 'a.db.example.com', env: tlsClientEnv },
    }, { clients: 8, connect: true }, 'pg-gateway');
  }
  if (only.has('setup')) {
    // pg-gateway 0.2.4 has no SCRAM: the row compares with our own md5 setup.
    const scramPorts = { ours: await freePort(), listener: await freePort() };
    const scramServers = [
      await startServer('fixed.mjs', [OURS, scramPorts.ours], { AUTH: 'scram' }),
      await startServer('fixed.mjs', [OURS, scramPorts.listener, 'listener'], { AUTH: 'scram' }),
    ];
    await point('connection setup (-C), SCRAM-SHA-256', 'c=8', {
      'ours md5 (js driver)': variants['ours (js driver)'],
      'ours SCRAM (js driver)': { port: scramPorts.ours, pid: scramServers[0].pid, ...fixedBench },
      'ours SCRAM (createServer)': { port: scramPorts.listener, pid: scramServers[1].pid, ...fixedBench },
    }, { clients: 8, connect: true }, 'ours md5 (js driver)');
    for (const server of scramServers) server.stop();
  }
  for (const server of servers) server.stop();
}

if (only.has('stats')) {
  // What server.stats() costs: the same createServer with and without its per-connection
  // counters (stats: false), 32 clients, more rounds than elsewhere (the difference is small).
  const ports = { on: await freePort(), off: await freePort() };
  const servers = [
    await startServer('fixed.mjs', [OURS, ports.on, 'listener']),
    await startServer('fixed.mjs', [OURS, ports.off, 'listener'], { STATS: 'off' }),
  ];
  const variants = {
    'stats: false': { port: ports.off, pid: servers[1].pid, ...fixedBench },
    'stats on (default)': { port: ports.on, pid: servers[0].pid, ...fixedBench },
  };
  for (const mode of ['simple', 'extended']) {
    const row = await point('stats cost (createServer, fixed result)', `${mode}, c=32`, variants, { clients: 32, mode }, 'stats: false', ROUNDS * 2);
    const [off, on] = [row.serverCpuUs['stats: false'], row.serverCpuUs['stats on (default)']];
    if (off && on) log(`stats cost, ${mode} c=32: server CPU per transaction ${((on / off - 1) * 100).toFixed(1)}% (${off.toFixed(1)} -> ${on.toFixed(1)} us)`);
  }
  for (const server of servers) server.stop();
}

if (only.has('query')) {
  // onQuery against the same server written with onMessage and hand-built bytes, both on our
  // js driver: what the structured API costs for a request/response workload.
  const ports = { message: await freePort(), query: await freePort(), listener: await freePort() };
  const servers = [
    await startServer('fixed.mjs', [OURS, ports.message]),
    await startServer('query.mjs', [OURS, ports.query]),
    await startServer('query.mjs', [OURS, ports.listener, 'listener']),
  ];
  const variants = {
    'onMessage (js driver)': { port: ports.message, pid: servers[0].pid, ...fixedBench },
    'onQuery (js driver)': { port: ports.query, pid: servers[1].pid, ...fixedBench },
    'onQuery (createServer)': { port: ports.listener, pid: servers[2].pid, ...fixedBench },
  };
  for (const mode of ['simple', 'extended']) {
    for (const clients of [1, 8, 32]) await point(`1-row SELECT, ${mode}`, `c=${clients}`, variants, { clients, mode }, 'onMessage (js driver)');
  }
  for (const server of servers) server.stop();
}

if (only.has('rows')) {
  await largeResults();
}

if (only.has('memory')) {
  for (const [label, ssl, env] of [['plain', undefined, {}], ['TLS', { rejectUnauthorized: false }, { CERT_DIR: certDir }]]) {
    for (const count of [100, 1000]) {
      const perConnection = {};
      // The fixed-result server (md5 in validateCredentials, onMessage), on each entry point,
      // then the two reference points (bench/servers/idle.mjs).
      const servers = [
        ['pg-gateway', 'fixed.mjs', [THEIRS]],
        ['ours (js driver)', 'fixed.mjs', [OURS]],
        ['ours (createServer)', 'fixed.mjs', [OURS, 'listener']],
        ['Node sockets alone', 'idle.mjs', ['bare']],
        ['ours (createServer, no JS hook)', 'idle.mjs', ['no-hooks', OURS]],
      ];
      for (const [name, script, [first, ...rest]] of servers) {
        const port = await freePort();
        const server = await startServer(script, [first, port, ...rest], env);
        try {
          perConnection[name] = await idleMemory(server, port, count, ssl, { raw: name === 'Node sockets alone', label: `${name} ${label}` });
        } catch (err) {
          perConnection[name] = null;
          log(`memory ${name} ${label} ${count}: ${err.message}`);
        }
        server.stop();
      }
      memoryRow(`Anonymous RSS per idle connection (KiB), ${label}`, `${count} connections`, perConnection, 'pg-gateway');
    }
  }
}

if (only.has('pglite')) {
  const ports = { theirs: await freePort(), ours: await freePort() };
  const servers = [await startServer('pglite.mjs', [THEIRS, ports.theirs]), await startServer('pglite.mjs', [OURS, ports.ours])];
  const variants = { 'pg-gateway': { port: ports.theirs, pid: servers[0].pid }, 'ours (js driver)': { port: ports.ours, pid: servers[1].pid } };
  // Twice the rounds: two identical PGlite servers differ by up to 10% in one 5 s run (the
  // WebAssembly's tiering and GC timing), more than the difference being measured.
  for (const clients of [1, 8]) await point('PGlite, simple', `c=${clients}`, variants, { clients }, 'pg-gateway', ROUNDS * 2);
  await point('PGlite, extended', 'c=1', variants, { clients: 1, mode: 'extended' }, 'pg-gateway');
  for (const server of servers) server.stop();
}

if (only.has('serve')) {
  // pg-gateway-native serve against pglite-server (@electric-sql/pglite-socket, the official
  // PGlite server), each with its own in-memory PGlite and pgbench's tables (scale 1), and a
  // loop calling PGlite in-process (the ceiling for one client).
  const anchorDir = path.join(here, 'anchors', 'pglite-socket');
  const socketScript = path.join(anchorDir, 'node_modules', '@electric-sql', 'pglite-socket', 'dist', 'scripts', 'server.js');
  try {
    statSync(socketScript);
  } catch {
    log('installing the pglite-socket anchor (bench/anchors/pglite-socket)');
    const install = await run('npm', ['install', '--prefix', anchorDir, '--no-audit', '--no-fund', '--legacy-peer-deps'], {}, 300000);
    if (install.code !== 0) throw new Error(`npm install of the pglite-socket anchor failed: ${install.stderr}`);
  }
  const ports = { ours: await freePort(), theirs: await freePort() };
  const startCli = async (argv, port) => {
    const logFile = openSync(path.join(scratch, `serve-${port}.log`), 'a');
    const child = spawn(process.execPath, argv, { stdio: ['ignore', logFile, logFile] });
    children.add(child);
    const deadline = Date.now() + 60000;
    for (;;) {
      const ok = await new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
        socket.on('error', () => resolve(false));
      });
      if (ok) break;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${argv[1]} did not start (see ${scratch})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return { pid: child.pid, stop: () => { child.kill('SIGKILL'); children.delete(child); } };
  };
  const servers = [
    await startCli([path.join(root, 'bin', 'pg-gateway-native.js'), 'serve', '--port', String(ports.ours), '--auth', 'none', '--log-level', 'warn'], ports.ours),
    await startCli([socketScript, '--port', String(ports.theirs), '--max-connections', '100'], ports.theirs),
  ];
  const variants = {
    'pglite-server': { port: ports.theirs, pid: servers[1].pid },
    'ours (serve)': { port: ports.ours, pid: servers[0].pid },
  };
  // The tables, generated server-side (-I dtGvp: no COPY, which pglite-server cannot do; that
  // is checked last, as it leaves pglite-server unable to answer).
  const pgbenchInit = (target, steps) => run('pgbench', ['-i', '-s', '1', ...(steps ? ['-I', steps] : []), '-h', '127.0.0.1', '-p', String(target.port), '-U', 'postgres', 'postgres'], { PGSSLMODE: 'disable', PGPASSWORD: 'postgres' }, 120000);
  for (const [name, target] of Object.entries(variants)) {
    const result = await pgbenchInit(target, 'dtGvp');
    if (result.code !== 0) throw new Error(`pgbench -i -I dtGvp against ${name} failed: ${result.stderr}`);
  }
  for (const mode of ['simple', 'extended', 'prepared']) {
    await point('serve: select-only (-S)', `${mode}, c=1`, variants, { clients: 1, mode, builtin: 'select-only' }, 'pglite-server');
  }
  for (const mode of ['simple', 'extended', 'prepared']) {
    await point('serve: select-only (-S)', `${mode}, c=8`, variants, { clients: 8, mode, builtin: 'select-only' }, 'pglite-server');
  }
  await point('serve: tpcb-like', 'simple, c=8', variants, { clients: 8, builtin: 'tpcb-like' }, 'pglite-server');
  await point('serve: tpcb-like', 'prepared, c=8', variants, { clients: 8, mode: 'prepared', builtin: 'tpcb-like' }, 'pglite-server');
  // What each passes: pgbench -i with its client-side data (COPY FROM STDIN), then a query.
  const init = {};
  for (const [name, target] of Object.entries(variants)) {
    const result = await pgbenchInit(target);
    const after = result.code === 0 ? await pgbench(target, { clients: 1, seconds: 1, builtin: 'select-only' }) : null;
    init[name] = result.code !== 0
      ? `fails: ${(result.stderr.trim().split('\n').pop() || `exit ${result.code}`).slice(0, 70)}`
      : after.tps === null ? `COPY passes, then: ${after.error}` : 'passes';
    log(`serve: pgbench -i against ${name}: ${init[name]}`);
  }
  results.push({ scenario: 'serve: pgbench -i -s 1 (COPY FROM STDIN)', point: 'outcome', outcome: init });
  for (const server of servers) server.stop();
  // The ceiling: the same SELECT in a loop in-process, against ours with one client.
  const ceiling = await run(process.execPath, [path.join(here, 'pglite-direct.mjs'), String(DURATION)], {}, (DURATION + 60) * 1000);
  const direct = Number(/tps = ([\d.]+)/.exec(ceiling.stdout)?.[1] ?? NaN);
  const ours = results.find((r) => r.scenario === 'serve: select-only (-S)' && r.point === 'extended, c=1')?.tps['ours (serve)'];
  results.push({ scenario: 'serve: ceiling', point: 'extended, c=1', tps: { 'PGlite in-process loop': direct, 'ours (serve)': ours ?? null }, ratio: { 'ours (serve)': ours && direct ? ours / direct : null } });
  log(`serve: PGlite in-process loop ${fmt(direct)} tps; ours (serve, extended, c=1) ${fmt(ours)} (${ours && direct ? (ours / direct).toFixed(2) : '?'}x)`);
}

if (only.has('proxy') || only.has('tls-proxy')) {
  const upstream = await startPostgres({ ssl: certs.wildcard, settings: { max_connections: 300 } });
  cleanups.push(() => upstream.stop());
  const bouncer = only.has('proxy') ? await startPgBouncer(upstream.port) : null;
  if (bouncer) cleanups.push(() => bouncer.stop());
  if (only.has('proxy')) {
    const ports = { theirs: await freePort(), detach: await freePort(), native: await freePort() };
    const servers = [
      await startServer('proxy.mjs', [THEIRS, ports.theirs, upstream.port, 'detach']),
      await startServer('proxy.mjs', [OURS, ports.detach, upstream.port, 'detach']),
      await startServer('proxy.mjs', [OURS, ports.native, upstream.port, 'native-listener']),
    ];
    const variants = {
      'pg-gateway detach': { port: ports.theirs, pid: servers[0].pid },
      'ours detach()': { port: ports.detach, pid: servers[1].pid },
      'ours proxy()': { port: ports.native, pid: servers[2].pid },
      ...(bouncer ? { pgbouncer: { port: bouncer.port, pid: bouncer.pid() } } : {}),
      'direct PostgreSQL': { port: upstream.port },
    };
    for (const clients of [1, 8, 32]) await point('proxy to PostgreSQL', `c=${clients}`, variants, { clients }, 'pg-gateway detach');
    for (const server of servers) server.stop();
    await proxyMemory(upstream.port);
  }
  if (only.has('tls-proxy')) {
    const ports = { theirs: await freePort(), detach: await freePort(), native: await freePort() };
    const servers = [
      await startServer('proxy.mjs', [THEIRS, ports.theirs, upstream.port, 'detach', certDir]),
      await startServer('proxy.mjs', [OURS, ports.detach, upstream.port, 'detach', certDir]),
      await startServer('proxy.mjs', [OURS, ports.native, upstream.port, 'native-listener', certDir]),
    ];
    const tlsTarget = (port, server) => ({ port, pid: server?.pid, host: 'a.db.example.com', env: tlsClientEnv });
    const variants = {
      'pg-gateway detach': tlsTarget(ports.theirs, servers[0]),
      'ours detach()': tlsTarget(ports.detach, servers[1]),
      'ours proxy()': tlsTarget(ports.native, servers[2]),
      'direct PostgreSQL (TLS)': tlsTarget(upstream.port),
    };
    for (const clients of [1, 8, 32]) await point('TLS-terminating SNI proxy', `c=${clients}`, variants, { clients }, 'pg-gateway detach');
    for (const server of servers) server.stop();
  }
}

/**
 * What a pooler in front of many idle clients pays: memory per idle proxied connection,
 * each proxy a fresh process (one that already served load has free memory to reuse).
 */
async function proxyMemory(upstreamPort) {
  const count = 200;
  const perConnection = {};
  const credentials = { user: 'postgres', password: 'postgres' };
  for (const [name, modulePath, kind] of [['pg-gateway detach', THEIRS, 'detach'], ['ours detach()', OURS, 'detach'], ['ours proxy()', OURS, 'native-listener']]) {
    const port = await freePort();
    const server = await startServer('proxy.mjs', [modulePath, port, upstreamPort, kind]);
    perConnection[name] = await idleMemory(server, port, count, undefined, { ...credentials, label: `${name} proxied` }).catch((err) => {
      log(`memory ${name} proxy: ${err.message}`);
      return null;
    });
    server.stop();
  }
  const bouncer = await startPgBouncer(upstreamPort);
  if (bouncer) {
    await new Promise((resolve) => setTimeout(resolve, 300)); // its pidfile
    const pid = bouncer.pid();
    perConnection.pgbouncer = pid ? await idleMemory({ pid }, bouncer.port, count, undefined, { ...credentials, label: 'pgbouncer proxied' }).catch(() => null) : null;
    bouncer.stop();
  }
  memoryRow('Anonymous RSS per idle proxied connection (KiB)', `${count} connections`, perConnection, 'pg-gateway detach');
}

/** PgBouncer in session mode in front of `upstreamPort` (skipped if not installed). */
async function startPgBouncer(upstreamPort) {
  const binary = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => { try { return statSync(p).isFile(); } catch { return false; } });
  if (!binary) {
    log('pgbouncer is not installed (apt-get install pgbouncer): its row is skipped');
    return null;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pggn-bouncer-'));
  const port = await freePort();
  writeFileSync(path.join(dir, 'userlist.txt'), '"postgres" "postgres"\n');
  writeFileSync(path.join(dir, 'pgbouncer.ini'), [
    '[databases]', `postgres = host=127.0.0.1 port=${upstreamPort} dbname=postgres`,
    '[pgbouncer]', 'listen_addr = 127.0.0.1', `listen_port = ${port}`, 'unix_socket_dir =',
    'auth_type = plain', `auth_file = ${dir}/userlist.txt`, 'pool_mode = session',
    'max_client_conn = 500', 'default_pool_size = 100', `logfile = ${dir}/pgbouncer.log`, `pidfile = ${dir}/pgbouncer.pid`, '',
  ].join('\n'));
  const isRoot = process.getuid?.() === 0;
  if (isRoot) {
    const { uid, gid } = statSync('/var/lib/postgresql');
    for (const file of ['', 'userlist.txt', 'pgbouncer.ini']) chownSync(path.join(dir, file), uid, gid);
  }
  const [command, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', binary, path.join(dir, 'pgbouncer.ini')]] : [binary, [path.join(dir, 'pgbouncer.ini')]];
  const child = spawn(command, argv, { stdio: 'ignore' });
  children.add(child);
  for (let i = 0; i < 50; i++) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const pid = () => {
    try {
      return Number(readFileSync(path.join(dir, 'pgbouncer.pid'), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  };
  // As root, `child` is runuser, which does not pass a kill on to PgBouncer: kill PgBouncer by
  // its pidfile too, also when the benchmark exits early.
  const killBouncer = () => {
    const bouncerPid = pid();
    if (bouncerPid) {
      try {
        process.kill(bouncerPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.on('exit', killBouncer);
  return {
    port,
    pid,
    stop: () => {
      killBouncer();
      child.kill('SIGKILL');
    },
  };
}

/**
 * One result of 1,000,000 rows x 5 columns read by a client that only counts bytes
 * (bench/count-rows.mjs): pg-gateway 0.2.4 with a JS encoder, ours through onQuery, and a
 * server on the Rust pgwire crate (no JS at all). Rows/s and MB/s per run, interleaved; the
 * server's peak RSS during its runs shows that memory stays bounded.
 */
async function largeResults() {
  const pgwireDir = path.join(here, 'pgwire-server');
  log('building bench/pgwire-server (cargo build --release)');
  const built = await run('cargo', ['build', '--release', '--quiet', '--manifest-path', path.join(pgwireDir, 'Cargo.toml')], {}, 600000);
  const ports = { theirs: await freePort(), ours: await freePort(), listener: await freePort(), pgwire: await freePort() };
  const servers = {
    'pg-gateway (JS encoder)': await startServer('rows.mjs', [THEIRS, ports.theirs]),
    'ours onQuery (js driver)': await startServer('rows.mjs', [OURS, ports.ours]),
    'ours onQuery (createServer)': await startServer('rows.mjs', [OURS, ports.listener, 'listener']),
  };
  const portOf = { 'pg-gateway (JS encoder)': ports.theirs, 'ours onQuery (js driver)': ports.ours, 'ours onQuery (createServer)': ports.listener };
  if (built.code === 0) {
    const child = spawn(path.join(pgwireDir, 'target', 'release', 'pgwire-server'), [String(ports.pgwire)], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.add(child);
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
      child.on('exit', (code) => reject(new Error(`pgwire-server exited with ${code}`)));
    });
    servers['pgwire (Rust)'] = { pid: child.pid, stop: () => child.kill('SIGKILL') };
    portOf['pgwire (Rust)'] = ports.pgwire;
  } else {
    log(`pgwire-server did not build, its column is left out: ${built.stderr.trim().split('\n').pop()}`);
  }
  const rounds = Math.max(3, ROUNDS * 2);
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const perSecond = [];
  const megabytes = [];
  const growth = [];
  for (const [label, sql] of [['rows in memory', 'select rows'], ['rows from a generator', 'select generated rows']]) {
    const samples = Object.fromEntries(Object.keys(servers).map((name) => [name, []]));
    const grown = Object.fromEntries(Object.keys(servers).map((name) => [name, 0]));
    for (let round = 0; round <= rounds; round++) {
      const order = round % 2 === 0 ? Object.keys(servers) : Object.keys(servers).reverse();
      for (const name of order) {
        const { pid } = servers[name];
        const before = residentKiB(pid).anon;
        const sampler = setInterval(() => { grown[name] = Math.max(grown[name], residentKiB(pid).anon - before); }, 20);
        const result = await run(process.execPath, [path.join(here, 'count-rows.mjs'), String(portOf[name]), sql], {}, 120000);
        clearInterval(sampler);
        // Round 0 warms each server up (JIT tiers) and is not counted.
        if (round > 0 && result.code === 0) samples[name].push(JSON.parse(result.stdout));
        else if (result.code !== 0) log(`rows: ${name} failed: ${result.stderr.trim().slice(0, 200)}`);
      }
    }
    const rowsPerSecond = {};
    const megabytesPerSecond = {};
    for (const [name, runs] of Object.entries(samples)) {
      rowsPerSecond[name] = runs.length ? mean(runs.map((r) => r.rows / r.seconds)) : null;
      megabytesPerSecond[name] = runs.length ? mean(runs.map((r) => r.bytes / r.seconds / 1e6)) : null;
    }
    const base = rowsPerSecond['pg-gateway (JS encoder)'];
    const ratio = Object.fromEntries(Object.keys(servers).map((name) => [name, base && rowsPerSecond[name] ? rowsPerSecond[name] / base : null]));
    perSecond.push({ scenario: '1,000,000 rows x 5 columns (int4, int8, text, float8, timestamptz), rows/s', point: label, tps: rowsPerSecond, ratio, errors: {} });
    megabytes.push({ scenario: '1,000,000 rows x 5 columns, MB/s', point: label, tps: megabytesPerSecond, ratio: {}, errors: {} });
    growth.push({ scenario: '1,000,000 rows x 5 columns, server RSS growth during a run (MiB)', point: label, kib: Object.fromEntries(Object.entries(grown).map(([n, kib]) => [n, kib / 1024])), ratio: {} });
    log(`rows, ${label}: ${Object.entries(rowsPerSecond).map(([n, v]) => `${n} ${v ? Math.round(v) : 'failed'}${ratio[n] ? ` (${ratio[n].toFixed(2)}x)` : ''}`).join(', ')}`);
  }
  results.push(...perSecond, ...megabytes, ...growth);
  for (const server of Object.values(servers)) server.stop();
}

for (const cleanup of cleanups.reverse()) await cleanup();

// The report: one table per scenario, ratios to pg-gateway 0.2.4 in the same run.
const date = new Date().toISOString().slice(0, 10);
console.log(`\npg-gateway-native benchmark, ${date}: ${os.cpus().length} CPUs, node ${process.version}, ${DURATION} s x ${ROUNDS} round(s) per point\n`);
let lastScenario = '';
for (const row of results) {
  if (row.scenario !== lastScenario) {
    lastScenario = row.scenario;
    const names = Object.keys(row.tps ?? row.kib ?? row.outcome);
    console.log(`\n${row.scenario}`);
    console.log(`| point | ${names.join(' | ')} |`);
    console.log(`| --- | ${names.map(() => '---').join(' | ')} |`);
  }
  const values = row.tps ?? row.kib ?? row.outcome;
  const cells = Object.keys(values).map((name) => {
    const value = values[name];
    if (row.outcome) return value;
    if (value === null || value === undefined) return `failed${row.errors?.[name] ? ` (${row.errors[name]})` : ''}`;
    const shown = row.tps ? Math.round(value) : value.toFixed(1);
    const ratio = row.ratio[name];
    return ratio && Math.abs(ratio - 1) > 1e-9 ? `${shown} (${ratio.toFixed(2)}x)` : `${shown}`;
  });
  console.log(`| ${row.point} | ${cells.join(' | ')} |`);
}
// Where the time went: a server that spends less CPU per transaction can only gain TPS while
// the rest of the machine (pgbench, PostgreSQL, the kernel) leaves room on the two cores.
console.log('\n\nCPU per transaction, microseconds: the server process / the whole machine');
lastScenario = '';
for (const row of results.filter((r) => r.machineCpuUs)) {
  if (row.scenario !== lastScenario) {
    lastScenario = row.scenario;
    const names = Object.keys(row.tps);
    console.log(`\n${row.scenario}`);
    console.log(`| point | ${names.join(' | ')} |`);
    console.log(`| --- | ${names.map(() => '---').join(' | ')} |`);
  }
  const us = (v) => (v === null || v === undefined ? '-' : v.toFixed(1));
  const cells = Object.keys(row.tps).map((name) => `${us(row.serverCpuUs[name])} / ${us(row.machineCpuUs[name])}`);
  console.log(`| ${row.point} | ${cells.join(' | ')} |`);
}
mkdirSync(path.join(here, 'results'), { recursive: true });
const file = path.join(here, 'results', `${date}.json`);
writeFileSync(file, JSON.stringify({ date, cpus: os.cpus().length, node: process.version, duration: DURATION, rounds: ROUNDS, results }, null, 2));
console.log(`\n(TPS from pgbench; ratio to the first column. Raw results: ${path.relative(root, file)})`);
process.exit(0);

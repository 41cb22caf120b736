// A real PostgreSQL server for proxy tests: Debian's postgresql, started on a free loopback
// port from a temporary data directory, with a password (SCRAM) for user postgres.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, chmodSync, chownSync, readdirSync, existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

function findBin() {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) throw new Error('PostgreSQL server binaries not found: apt-get install postgresql');
  const version = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => b - a)[0];
  if (!version) throw new Error('PostgreSQL server binaries not found: apt-get install postgresql');
  return path.join(root, version, 'bin');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** PostgreSQL refuses to run as root; as root, run it as Debian's postgres user. */
function asServerUser(command, args) {
  const isRoot = process.getuid?.() === 0;
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: 120000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/**
 * `ssl: { cert, key }` (PEM Buffers) turns TLS on; `settings` are extra `-c` settings;
 * `auth: 'trust'` lets every local client in without a password.
 */
export async function startPostgres({ password = 'postgres', ssl, settings = {}, auth = 'scram-sha-256' } = {}) {
  const bin = findBin();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pggn-pg-'));
  const data = path.join(dir, 'data');
  const pwfile = path.join(dir, 'pw');
  writeFileSync(pwfile, `${password}\n`);
  chmodSync(dir, 0o700);
  if (process.getuid?.() === 0) {
    const { uid, gid } = await import('node:fs').then((fs) => fs.statSync('/var/lib/postgresql'));
    chownSync(dir, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  await asServerUser(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', `--auth=${auth}`, `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  let options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c fsync=off -c max_connections=1100`;
  if (ssl) {
    writeFileSync(path.join(dir, 'server.crt'), ssl.cert);
    writeFileSync(path.join(dir, 'server.key'), ssl.key, { mode: 0o600 });
    if (process.getuid?.() === 0) {
      const { uid, gid } = await import('node:fs').then((fs) => fs.statSync('/var/lib/postgresql'));
      chownSync(path.join(dir, 'server.crt'), uid, gid);
      chownSync(path.join(dir, 'server.key'), uid, gid);
    }
    options += ` -c ssl=on -c ssl_cert_file=${dir}/server.crt -c ssl_key_file=${dir}/server.key`;
  }
  for (const [name, value] of Object.entries(settings)) options += ` -c ${name}=${value}`;
  await asServerUser(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'log'), '-o', options, '-w', 'start']);
  return {
    port,
    password,
    dir,
    async stop() {
      await asServerUser(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

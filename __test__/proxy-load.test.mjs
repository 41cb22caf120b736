// connection.proxy() under the loads that broke it: a client that pipelines 16 MiB before it
// reads (the two directions used to wait on each other for good), an upstream that never
// accepts (no connect timeout: the client got no answer and both sockets stayed for minutes),
// and a client that leaves meanwhile.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { startPostgres } from './postgres.mjs';
import { makeCertificates } from './certs.mjs';
import {
  MODES, errorFields, frontend, gateway, parseMessages, rawClient, run, startServer,
} from './helpers.mjs';

const certs = makeCertificates();

/**
 * A loopback port whose listener never accepts and whose accept queue is full, so a connect
 * to it waits (its SYNs are dropped) like one to a host that is down.
 */
async function blackhole(t) {
  const script = 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)';
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [line] = await once(child.stdout, 'data');
  const port = Number(String(line).trim());
  const fillers = Array.from({ length: 4 }, () => net.connect(port, '127.0.0.1').on('error', () => {}));
  t.after(() => { for (const s of fillers) s.destroy(); });
  // Until this connect waits, the queue is not full yet.
  for (;;) {
    const probe = net.connect(port, '127.0.0.1').on('error', () => {});
    const connected = await Promise.race([once(probe, 'connect').then(() => true), new Promise((r) => setTimeout(() => r(false), 300))]);
    probe.destroy();
    if (!connected) return port;
    fillers.push(net.connect(port, '127.0.0.1').on('error', () => {}));
  }
}

/**
 * An upstream that accepts only after 0.8 s (its accept queue is full until then, so a connect
 * takes about a second) and reports, as hex lines, the first bytes each connection sends.
 */
async function slowUpstream(t) {
  const script = [
    'import socket,time',
    's=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(0)',
    'print(s.getsockname()[1],flush=True)',
    'time.sleep(0.8); s.settimeout(5); end=time.time()+5',
    'while time.time()<end:',
    '  try: c,_=s.accept()',
    '  except Exception: break',
    '  c.settimeout(0.3)',
    '  try: d=c.recv(100)',
    "  except Exception: d=b''",
    '  if d: print(d.hex(),flush=True)',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const lines = [];
  let partial = '';
  child.stdout.on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    lines.push(...parts.filter(Boolean));
  });
  while (lines.length === 0) await new Promise((r) => setTimeout(r, 20));
  const port = Number(lines.shift());
  const fillers = Array.from({ length: 4 }, () => net.connect(port, '127.0.0.1').on('error', () => {}));
  t.after(() => { for (const s of fillers) s.destroy(); });
  await new Promise((r) => setTimeout(r, 100));
  return { port, lines };
}

test('proxy() under load, every mode', { timeout: 300_000 }, async (t) => {
  const upstream = await startPostgres({ auth: 'trust' });
  t.after(() => upstream.stop());

  for (const mode of MODES) {
    await t.test(`${mode}: 2 000 pipelined queries of 8 KiB each come back through proxy()`, async (tt) => {
      const server = await startServer(mode, () => ({
        authMode: 'none',
        onStartup(state, connection) {
          connection.proxy({ host: '127.0.0.1', port: upstream.port, startup: true });
          return true;
        },
      }));
      tt.after(() => server.close());
      const client = await rawClient(server.port);
      client.send(frontend.startup({ user: 'postgres', database: 'postgres' }));
      await client.waitFor((b) => parseMessages(b).some((m) => m.type === 'Z'), 10_000);
      const seen = client.received.length;
      const text = 'q'.repeat(8000);
      // 16 MiB sent before anything is read: as much as fits in the sockets on both hops.
      client.send(Buffer.concat(Array.from({ length: 2000 }, () => frontend.query(`select '${text}'`))));
      let ready = 0;
      let offset = seen;
      await client.waitFor((b) => {
        for (const m of parseMessages(b.subarray(offset))) {
          offset += 5 + m.body.length;
          if (m.type === 'Z') ready += 1;
        }
        return ready === 2000;
      }, 60_000);
      assert.equal(ready, 2000);
      client.close();
    });

    await t.test(`${mode}: an upstream that never accepts gets the client an answer at connectTimeout`, async (tt) => {
      const port = await blackhole(tt);
      const server = await startServer(mode, () => ({
        authMode: 'none',
        onStartup(state, connection) {
          connection.proxy({ host: '127.0.0.1', port, connectTimeout: 500 });
          return true;
        },
      }));
      tt.after(() => server.close());
      const started = Date.now();
      const client = await rawClient(server.port);
      client.send(frontend.startup({ user: 'postgres' }));
      await client.waitClosed(10_000);
      const elapsed = Date.now() - started;
      const [error] = parseMessages(client.received).filter((m) => m.type === 'E').map((m) => errorFields(m.body));
      assert.equal(error?.C, '08006', client.received.toString());
      assert.match(error.M, /could not connect to upstream server 127\.0\.0\.1:\d+: .*tim/i);
      assert.ok(elapsed >= 450 && elapsed < 5000, `answered after ${elapsed} ms`);
    });

    await t.test(`${mode}: what a TLS client sends while proxy() connects reaches the upstream opened`, async (tt) => {
      const upstreamSlow = await slowUpstream(tt);
      const server = await startServer(mode, () => ({
        tls: certs.localhost,
        onTlsUpgrade(state, connection) {
          connection.proxy({ port: upstreamSlow.port });
        },
      }));
      tt.after(() => server.close());
      const raw = net.connect(server.port, '127.0.0.1');
      await once(raw, 'connect');
      raw.write(frontend.special(80877103));
      await once(raw, 'data');
      const secure = tls.connect({ socket: raw, servername: 'localhost', rejectUnauthorized: false });
      secure.on('error', () => {});
      tt.after(() => secure.destroy());
      await once(secure, 'secureConnect');
      await new Promise((r) => setTimeout(r, 300)); // proxy() is connecting by now
      const startup = frontend.startup({ user: 'early' });
      secure.write(startup);
      const deadline = Date.now() + 10_000;
      while (upstreamSlow.lines.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      // 80c3117 forwarded the client's TLS record as it was (17 03 03 ...), cut or whole.
      assert.deepEqual(upstreamSlow.lines, [startup.toString('hex')]);
    });

    await t.test(`${mode}: clients that leave while proxy() waits to flush a large answer are let go`, async (tt) => {
      // proxy() first flushes what is queued; a client that reads none of it and then leaves
      // held both sockets and the task forever on 80c3117 (and destroy() could not free it).
      const echo = net.createServer((socket) => { socket.on('error', () => {}); socket.resume(); });
      echo.listen(0, '127.0.0.1');
      await once(echo, 'listening');
      tt.after(() => echo.close());
      let open = 0;
      const server = await startServer(mode, () => ({
        authMode: 'none',
        onStartup(state, connection) {
          connection.sendData(Buffer.alloc(32 << 20, 0x41));
          connection.proxy({ port: echo.address().port });
          return true;
        },
      }), {
        onConnection(connection) {
          open += 1;
          connection.socket.on('close', () => { open -= 1; });
        },
      });
      tt.after(() => server.close());
      const count = () => (mode === 'native' ? server.server.connectionCount : open);
      const clients = [];
      for (let i = 0; i < 10; i += 1) {
        const client = await rawClient(server.port);
        client.socket.pause();
        client.send(frontend.startup({ user: 'u' }));
        clients.push(client);
      }
      const deadline = Date.now() + 5000;
      while (count() < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(count(), 10);
      for (const client of clients) client.close();
      const left = Date.now();
      while (count() > 0 && Date.now() < left + 10_000) await new Promise((r) => setTimeout(r, 20));
      assert.equal(count(), 0, 'connections still open after their clients left');
    });

    await t.test(`${mode}: a client that leaves while proxy() connects is let go at once`, async (tt) => {
      const port = await blackhole(tt);
      let open = 0;
      const server = await startServer(mode, () => ({
        authMode: 'none',
        onStartup(state, connection) {
          connection.proxy({ host: '127.0.0.1', port }); // the default 15 s timeout
          return true;
        },
      }), {
        onConnection(connection) {
          open += 1;
          connection.socket.on('close', () => { open -= 1; });
        },
      });
      tt.after(() => server.close());
      const count = () => (mode === 'native' ? server.server.connectionCount : open);
      const clients = await Promise.all(Array.from({ length: 20 }, () => rawClient(server.port)));
      for (const client of clients) client.send(frontend.startup({ user: 'postgres' }));
      const deadline = Date.now() + 5000;
      while (count() < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(count(), 20);
      const left = Date.now();
      for (const client of clients) client.close();
      while (count() > 0 && Date.now() < left + 10_000) await new Promise((r) => setTimeout(r, 20));
      assert.equal(count(), 0);
      assert.ok(Date.now() - left < 3000, `freed after ${Date.now() - left} ms`);
    });
  }

  for (const driver of ['js', 'native']) {
    await t.test(`${driver}: the README's detach() and pipe after TLS raise no 'error' under pgbench -C`, async (tt) => {
      const errors = {};
      const note = (where) => (err) => { errors[`${where}: ${err.code ?? err.message}`] = (errors[`${where}: ${err.code ?? err.message}`] ?? 0) + 1; };
      const server = net.createServer((socket) => {
        socket.on('error', note('accepted socket'));
        const connection = new gateway.PostgresConnection(socket, {
          driver,
          tls: certs.wildcard,
          onTlsUpgrade() {
            const proxySocket = net.connect({ host: '127.0.0.1', port: upstream.port });
            const client = connection.detach();
            client.on('error', note('detached stream'));
            proxySocket.on('error', note('upstream socket'));
            proxySocket.pipe(client);
            client.pipe(proxySocket);
            proxySocket.on('end', () => client.end());
            client.on('end', () => proxySocket.end());
            proxySocket.on('error', (err) => client.destroy(err));
            client.on('error', (err) => proxySocket.destroy(err));
            proxySocket.on('close', () => client.destroy());
            client.on('close', () => proxySocket.destroy());
          },
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      tt.after(() => server.close());
      const env = { PGHOSTADDR: '127.0.0.1', PGSSLMODE: 'require' };
      const args = ['-h', 'a.db.example.com', '-p', String(server.address().port), '-U', 'postgres'];
      const init = await run('pgbench', [...args, '-i', '-q', 'postgres'], { env, timeout: 60_000 });
      assert.equal(init.code, 0, init.stderr);
      // A new connection per transaction: every client closes first, every time.
      const bench = await run('pgbench', [...args, '-C', '-S', '-T', '3', '-c', '4', '-j', '2', 'postgres'], { env, timeout: 60_000 });
      assert.match(bench.stdout, /number of failed transactions: 0 /, bench.stderr);
      // 80c3117 wrote to the socket Node had already ended after the client's FIN.
      assert.deepEqual(errors, {});
    });
  }
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import tls from 'node:tls';
import { startHarness, type Harness } from '../../test-support/control-plane.js';
import { spawnRouter, type RouterProcess } from '../../test-support/router-process.js';
import { eventually, routerRequest, startUpstream, type Upstream } from '../../test-support/router.js';

let h: Harness;
let slow: Upstream;
let router: RouterProcess;
let httpPort: number;

before(async () => {
  h = await startHarness('cluster');
  slow = await startUpstream('slow', (req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`slow ${process.pid}`);
    }, delay);
  });
  router = await spawnRouter(h.prefix, { ROUTER_DRAIN_TIMEOUT: '5000' });
  httpPort = router.httpPort;
  await h.deploy('clustered', [slow.container]);
  await eventually(async () => (await routerRequest(httpPort, 'clustered.localhost')).status === 200, 5000);
});

after(async () => {
  router.kill();
  await slow.close();
  await h.close();
});

const admin = (path: string) => router.admin(path);
test('two workers serve; metrics are aggregated on the admin port; readiness covers every worker', async () => {
  for (let i = 0; i < 20; i++) assert.equal((await routerRequest(httpPort, 'clustered.localhost')).status, 200);
  const metrics = await admin('/metrics');
  assert.equal(metrics.status, 200);
  const m = /router_requests_total\{app="clustered",class="2xx",code="-"\} (\d+)/.exec(metrics.body);
  assert.ok(m, 'the request counter is exposed');
  assert.ok(Number(m[1]) >= 20, `aggregated over workers: ${m[1]}`);
  const ready = await admin('/readyz');
  assert.equal(ready.status, 200, ready.body);
  assert.equal(JSON.parse(ready.body).workers.length, 2);
  const wrongPort = await routerRequest(httpPort, 'clustered.localhost', '/metrics');
  assert.equal(wrongPort.body.startsWith('slow'), true, '/metrics on the public port is the app\'s, not the router\'s');
});

test('workers run with the young generation of ROUTER_SEMI_SPACE_MB (default 64 MiB semi-spaces)', () => {
  const pids = router.lines.filter((l) => l['msg'] === 'router worker listening').map((l) => l['workerPid'] as number);
  assert.equal(pids.length >= 2, true);
  for (const pid of pids) {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(args.includes('--max-semi-space-size=64'), `worker ${pid}: ${args.join(' ')}`);
  }
});

test('every worker serves the one default certificate the primary generated', async () => {
  const fingerprints = new Set<string>();
  for (let i = 0; i < 8; i++) {
    fingerprints.add(
      await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: router.httpsPort, rejectUnauthorized: false }, () => {
          resolve(socket.getPeerCertificate().fingerprint256);
          socket.destroy();
        });
        socket.once('error', reject);
      }),
    );
  }
  assert.equal(fingerprints.size, 1, 'round-robin accept spread these over both workers');
});

test('a crashed worker is replaced and traffic keeps flowing', async () => {
  const workers = router.lines.filter((l) => l['msg'] === 'router worker listening');
  const victim = workers[0]!['workerPid'] as number;
  const mark = router.lines.length;
  process.kill(victim, 'SIGKILL');
  await router.waitForLine((l) => l['msg'] === 'router worker listening' && l['workerPid'] !== victim, 15_000, mark);
  for (let i = 0; i < 20; i++) assert.equal((await routerRequest(httpPort, 'clustered.localhost')).status, 200);
  await eventually(async () => (await admin('/readyz')).status === 200, 5000, 50);
});

test('SIGTERM drains: a request in flight completes, then the router exits 0', async () => {
  const inflight = routerRequest(httpPort, 'clustered.localhost', '/?delay=700');
  await new Promise((r) => setTimeout(r, 150));
  const exited = new Promise<number | null>((resolve) => router.child.once('exit', (code) => resolve(code)));
  router.child.kill('SIGTERM');
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.equal(await exited, 0);
});

/** Pids of processes holding a listening socket on `port` (from /proc: no ss/lsof needed). */
function listenerPids(port: number): Set<number> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && parseInt(f[1]!.split(':')[1]!, 16) === port) inodes.add(f[9]!);
    }
  }
  const pids = new Set<number>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) pids.add(Number(pid));
      } catch {
        // gone meanwhile
      }
    }
  }
  return pids;
}

test('ROUTER_ACCEPT: round-robin leaves the listening socket to the primary; kernel gives it to the workers, which serve', async (t) => {
  // Its own routers: an earlier test drains the shared one.
  const rr = await spawnRouter(h.prefix);
  t.after(() => rr.kill());
  assert.deepEqual([...listenerPids(rr.httpPort)], [rr.child.pid], 'round-robin: only the primary listens');
  const kernel = await spawnRouter(h.prefix, { ROUTER_ACCEPT: 'kernel' });
  t.after(() => kernel.kill());
  const pids = listenerPids(kernel.httpPort);
  pids.delete(kernel.child.pid!);
  assert.equal(pids.size, 2, 'both workers hold the listening socket');
  for (let i = 0; i < 30; i++) assert.equal((await routerRequest(kernel.httpPort, 'clustered.localhost')).status, 200);
});

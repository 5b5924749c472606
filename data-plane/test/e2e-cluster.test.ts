import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
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

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { sourcePath } from '../../proto/source-path.js';
import { startHarness, type Harness } from '../../test-support/control-plane.js';
import { redisUrl } from '../../test-support/redis.js';
import { eventually, routerRequest, startUpstream, type Upstream } from '../../test-support/router.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

let h: Harness;
let slow: Upstream;
let child: ChildProcess;
let httpPort: number;
let adminPort: number;
const lines: Array<Record<string, unknown>> = [];

function waitForLine(match: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000, from = 0): Promise<Record<string, unknown>> {
  return eventually(async () => lines.slice(from).some(match), timeoutMs, 20).then(() => lines.slice(from).find(match)!);
}

before(async () => {
  h = await startHarness('cluster');
  slow = await startUpstream('slow', (req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`slow ${process.pid}`);
    }, delay);
  });
  httpPort = await freePort();
  adminPort = await freePort();
  child = spawn(process.execPath, [sourcePath(import.meta.url, '..', '..', 'dist', 'data-plane', 'src', 'main.js')], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: h.prefix,
      ROUTER_HOST: '127.0.0.1',
      ROUTER_HTTP_PORT: String(httpPort),
      ROUTER_HTTPS_PORT: String(await freePort()),
      ROUTER_ADMIN_PORT: String(adminPort),
      ROUTER_WORKERS: '2',
      ROUTER_DRAIN_TIMEOUT: '5000',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON: ignore
    }
  });
  await waitForLine((l) => l['msg'] === 'router listening');
  await h.deploy('clustered', [slow.container]);
  await eventually(async () => (await routerRequest(httpPort, 'clustered.localhost')).status === 200, 5000);
});

after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await slow.close();
  await h.close();
});

async function admin(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`);
  return { status: res.status, body: await res.text() };
}

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

test('a crashed worker is replaced and traffic keeps flowing', async () => {
  const workers = lines.filter((l) => l['msg'] === 'router worker listening');
  const victim = workers[0]!['workerPid'] as number;
  const mark = lines.length;
  process.kill(victim, 'SIGKILL');
  await waitForLine((l) => l['msg'] === 'router worker listening' && l['workerPid'] !== victim, 15_000, mark);
  for (let i = 0; i < 20; i++) assert.equal((await routerRequest(httpPort, 'clustered.localhost')).status, 200);
  await eventually(async () => (await admin('/readyz')).status === 200, 5000, 50);
});

test('SIGTERM drains: a request in flight completes, then the router exits 0', async () => {
  const inflight = routerRequest(httpPort, 'clustered.localhost', '/?delay=700');
  await new Promise((r) => setTimeout(r, 150));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const res = await inflight;
  assert.equal(res.status, 200);
  assert.equal(await exited, 0);
});

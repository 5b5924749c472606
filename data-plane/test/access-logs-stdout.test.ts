import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { sourcePath } from '../../proto/source-path.js';
import { startHarness } from '../../test-support/control-plane.js';
import { redisUrl } from '../../test-support/redis.js';
import { eventually, routerRequest, startUpstream } from '../../test-support/router.js';
import { freePort } from '../../test-support/router-process.js';

test('without LOG_SHIPPER_URL, a spawned router writes one valid NDJSON line per request to stdout, the last batch at SIGTERM', async (t) => {
  const h = await startHarness('alog-stdout');
  const up = await startUpstream('c1');
  const httpPort = await freePort();
  const child = spawn(process.execPath, [sourcePath(import.meta.url, '..', '..', 'dist', 'data-plane', 'src', 'main.js')], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: h.prefix,
      ROUTER_HOST: '127.0.0.1',
      ROUTER_HTTP_PORT: String(httpPort),
      ROUTER_HTTPS_PORT: String(await freePort()),
      ROUTER_ADMIN_PORT: String(await freePort()),
      ROUTER_WORKERS: '1',
      ROUTER_DRAIN_TIMEOUT: '2000',
      LOG_SHIPPER_URL: '',
      // Cut by size while it runs; the rest only at shutdown (the time bound is far away).
      LOG_BATCH_BYTES: '1024',
      LOG_BATCH_MS: '60000',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await up.close();
    await h.close();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const access: Array<Record<string, unknown>> = [];
  const service: Array<Record<string, unknown>> = [];
  const broken: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      broken.push(text);
      return;
    }
    ('protocol' in parsed ? access : service).push(parsed);
  });
  await eventually(async () => service.some((l) => l['msg'] === 'router listening'), 15_000, 20);
  await eventually(async () => (await h.deploy('stdout-app', [up.container])).status === 200, 5000, 50);
  await eventually(async () => (await routerRequest(httpPort, 'stdout-app.localhost', '/warmup')).status === 200, 5000);

  const n = 40;
  for (let i = 0; i < n; i++) assert.equal((await routerRequest(httpPort, 'stdout-app.localhost', `/s/${i}?evil="\\`)).status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await routerRequest(httpPort, `ghost-${i}.localhost`, '/')).status, 404);
  await eventually(async () => access.length > 0, 5000, 20);
  const beforeStop = access.length;
  assert.ok(beforeStop < n + 3 + 1, 'some lines wait for the end of their batch');

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(broken, [], 'every stdout line is JSON');
  const mine = access.filter((l) => String(l['path']).startsWith('/s/'));
  assert.equal(mine.length, n, 'one line per request');
  assert.deepEqual(mine.map((l) => l['path']).sort(), Array.from({ length: n }, (_, i) => `/s/${i}?evil="\\`).sort());
  for (const l of mine) {
    assert.equal(l['app'], 'stdout-app');
    assert.equal(l['status'], 200);
    assert.equal(l['container'], 'c1');
    assert.equal(l['code'], '-');
  }
  const ghosts = access.filter((l) => l['code'] === 'UNKNOWN_HOST');
  assert.equal(ghosts.length, 3);
  assert.ok(ghosts.every((l) => l['app'] === '-'));
});

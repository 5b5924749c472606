import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../scripts/embedded-redis.js';
import { startHarness, type Harness } from '../../test-support/control-plane.js';

// This test owns its redis-server: it stops and restarts it.
let redis: EmbeddedRedis;
let dir: string;
let h: Harness;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cp-outage-'));
  redis = await startEmbeddedRedis({ persistDir: dir });
  process.env['REDIS_URL'] = redis.url;
  h = await startHarness('outage', { REDIS_URL: redis.url });
});

after(async () => {
  await h.close().catch(() => undefined);
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
});

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}

test('Redis down: 503 STORE_UNAVAILABLE within a second; back: recovers by itself', async () => {
  assert.equal((await h.deploy('phoenix', [{ id: 'w1', host: '10.0.0.1', port: 80 }])).status, 200);
  const port = redis.port;
  await redis.stop();

  for (const call of [
    () => h.deploy('phoenix', [{ id: 'w2', host: '10.0.0.2', port: 80 }]),
    () => h.get('/v1/apps/phoenix'),
    () => h.get('/v1/routes/phoenix.localhost'),
    () => h.get('/readyz', { auth: 'none' }),
  ]) {
    const started = Date.now();
    const res = await call();
    const elapsed = Date.now() - started;
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.code, 'STORE_UNAVAILABLE');
    assert.ok(elapsed < 1500, `answered in ${elapsed} ms`);
  }
  assert.equal((await h.get('/healthz', { auth: 'none' })).status, 200, 'alive while Redis is down');

  redis = await startEmbeddedRedis({ persistDir: dir, port });
  await until(async () => (await h.get('/readyz', { auth: 'none' })).status === 200, 10_000);
  const app = await h.get('/v1/apps/phoenix');
  assert.equal(app.status, 200, 'data kept by the AOF');
  assert.equal(app.body.containers[0].id, 'w1', 'the write refused during the outage did not happen');
  assert.equal((await h.deploy('phoenix', [{ id: 'w3', host: '10.0.0.3', port: 80 }])).status, 200);
});

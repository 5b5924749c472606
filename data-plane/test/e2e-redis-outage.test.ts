import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../scripts/embedded-redis.js';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';

// This file owns its redis-server: it stops and restarts it.
let redis: EmbeddedRedis;
let dir: string;
let s: Stack;
let a: Upstream;
let b: Upstream;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'router-outage-'));
  redis = await startEmbeddedRedis({ persistDir: dir });
  s = await startStack('outage', { REDIS_URL: redis.url, ROUTER_MAX_STALENESS: '2000' });
  a = await startUpstream('a');
  b = await startUpstream('b');
});

after(async () => {
  await s.close().catch(() => undefined);
  await redis.stop();
  await Promise.all([a.close(), b.close()]);
  await rm(dir, { recursive: true, force: true });
});

test('Redis down: cached hosts keep serving, unseen hosts 503; back: the router resyncs by itself', async () => {
  await s.h.deploy('steady', [a.container]);
  await eventually(async () => (await s.get('steady.localhost')).status === 200);
  const port = redis.port;
  await redis.stop();

  for (let i = 0; i < 10; i++) {
    const res = await s.get('steady.localhost');
    assert.equal(res.status, 200, 'served from the cache while Redis is down');
    assert.equal(res.body.split(' ')[0], 'a');
  }
  const unseen = await s.get('never-seen.localhost', '/', { accept: 'application/json' });
  assert.equal(unseen.status, 503);
  assert.equal(JSON.parse(unseen.body).code, 'STORE_UNAVAILABLE');
  await eventually(async () => !s.router.readiness().ready, 5000, 50);

  redis = await startEmbeddedRedis({ persistDir: dir, port });
  await eventually(async () => (await s.h.get('/readyz', { auth: 'none' })).status === 200, 10_000, 50);
  assert.equal((await s.h.send({ app: 'steady', type: 'scale', containers: [b.container] })).status, 200);
  await eventually(async () => (await s.get('steady.localhost')).body.startsWith('b'), 5000, 20);
  await eventually(async () => s.router.readiness().ready, 10_000, 50);
  assert.equal((await s.get('never-seen.localhost')).status, 404, 'unseen names resolve again');
});

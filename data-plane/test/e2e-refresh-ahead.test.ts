/**
 * Refresh-ahead end to end: the real control plane, the real router, real containers. A change
 * to an app the router is serving is re-read when its invalidation arrives, not when the next
 * request finds the entry invalid; changes to names the router never served cost it nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../scripts/embedded-redis.js';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';

// This file owns its redis-server: the last test stops it.
let redis: EmbeddedRedis;
let s: Stack;
let a: Upstream;
let b: Upstream;

before(async () => {
  redis = await startEmbeddedRedis();
  s = await startStack('refresh-ahead', { REDIS_URL: redis.url });
  a = await startUpstream('a');
  b = await startUpstream('b');
});

after(async () => {
  await s.close().catch(() => undefined);
  await redis.stop();
  await Promise.all([a.close(), b.close()]);
});

/** Redis lookups the router made, from its metrics. */
async function lookups(): Promise<number> {
  s.router.resolver.cache.publishMetrics();
  const { values } = await s.router.metrics.redisLookups.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

async function refreshedAhead(): Promise<number> {
  s.router.resolver.cache.publishMetrics();
  const { values } = await s.router.metrics.refreshAhead.get();
  return values[0]?.value ?? 0;
}

/** The event's invalidation reached the router and whatever it started is done. */
async function settled(reply: { status: number; body: { version?: number } }): Promise<void> {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const version = reply.body.version!;
  const resolver = s.router.resolver;
  await eventually(async () => resolver.status().lastVersion >= version && resolver.cache.inFlight === 0, 5000, 2);
}

test('a burst of changes to names the router never served makes no Redis lookup', async () => {
  assert.equal((await s.get('ghost.localhost')).status, 404, 'a name looked up once: cached as unknown');
  const before = await lookups();
  let last = { status: 0, body: {} as { version?: number } };
  for (let i = 0; i < 100; i++) {
    last = await s.h.deploy(`never-${i}`, [a.container]);
    assert.equal(last.status, 200);
  }
  // Its negative entry is dropped; re-read when asked, not ahead.
  await settled(await s.h.deploy('ghost', [a.container]));
  await settled(last);
  assert.equal(await lookups(), before, 'no lookup for 100 new apps and a name known unknown');
  assert.equal(await refreshedAhead(), 0);
  assert.equal((await s.get('ghost.localhost')).body.split(' ')[0], 'a', 'the created name is served at its first request');
  assert.equal(await lookups(), before + 1);
});

test('after a scale the new route is cached before any request: Redis stopped right after, the new container answers', async () => {
  await s.h.deploy('moving', [a.container]);
  await eventually(async () => (await s.get('moving.localhost')).body.startsWith('a'));
  const before = await lookups();
  await settled(await s.h.send({ app: 'moving', type: 'scale', containers: [b.container] }));
  assert.equal(await refreshedAhead(), 1);
  assert.equal(await lookups(), before + 1, 'one lookup, made when the invalidation arrived');

  // Without refresh-ahead the entry would only be marked invalid: with Redis gone, the
  // request would get the old route (stale-if-error) and go to `a`.
  await redis.stop();
  for (let i = 0; i < 5; i++) {
    const res = await s.get('moving.localhost');
    assert.equal(res.status, 200);
    assert.equal(res.body.split(' ')[0], 'b', 'served from the cache: the new container');
  }
  assert.equal(await lookups(), before + 1, 'no lookup since');
});

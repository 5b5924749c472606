import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { KeySchema } from '../../proto/keys.js';
import type { HostRecord } from '../../proto/records.js';
import { connectRedis } from '../../proto/redis-connection.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../scripts/embedded-redis.js';
import { selfSigned } from '../../test-support/certs.js';
import { startHarness, type Harness } from '../../test-support/control-plane.js';
import { redisUrl } from '../../test-support/redis.js';
import { RouterMetrics } from '../src/metrics.js';
import type { HostMatch } from '../src/routing/host-store.js';
import { RedisRouteResolver, type RouteResolverOptions } from '../src/routing/route-resolver.js';
import { StoreUnavailableError } from '../src/routing/route-lookup.js';

const c1 = { id: 'web-1', host: '10.0.3.7', port: 31000 };
const c2 = { id: 'web-2', host: '10.0.3.8', port: 31001 };
const c3 = { id: 'web-3', host: '10.0.3.9', port: 31002 };
const silent = pino({ level: 'silent' });
const ignore = (): void => undefined;

interface Setup {
  h: Harness;
  resolver: RedisRouteResolver;
  metrics: RouterMetrics;
}

function resolverOptions(redis: Redis, keys: KeySchema, metrics: RouterMetrics, extra: Partial<RouteResolverOptions> = {}): RouteResolverOptions {
  return { redis, keys, metrics, log: silent, max: 1000, ttlMs: 60_000, negativeTtlMs: 5_000, pingIntervalMs: 100, ...extra };
}

/** A control plane and a started resolver on its prefix, both released when the test ends. */
async function setup(t: TestContext, label: string, extra: Partial<RouteResolverOptions> = {}): Promise<Setup> {
  const h = await startHarness(label);
  const redis = new Redis(redisUrl());
  const metrics = new RouterMetrics(10);
  const resolver = new RedisRouteResolver(resolverOptions(redis, h.keys, metrics, extra));
  t.after(async () => {
    await resolver.close();
    redis.disconnect();
    await h.close();
  });
  await resolver.start();
  assert.equal(resolver.status().subscribed, true);
  return { h, resolver, metrics };
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The event went through the control plane and its invalidation reached the resolver. */
async function applied(resolver: RedisRouteResolver, reply: { status: number; body: { version?: number } }): Promise<void> {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const version = reply.body.version!;
  await until(() => resolver.status().lastVersion >= version, `version ${version}`);
}

function isPromise(value: unknown): value is Promise<unknown> {
  return value instanceof Promise;
}

async function counter(metrics: RouterMetrics, result: string): Promise<number> {
  const { values } = await metrics.invalidations.get();
  return values.find((v) => v.labels['result'] === result)?.value ?? 0;
}

describe('route resolver against the control plane', () => {
  test('a deploy is routable at once, without a restart', async (t) => {
    const { h, resolver } = await setup(t, 'rr-deploy');
    await applied(resolver, await h.deploy('fresh', [c1]));
    const record = await resolver.resolve('fresh.localhost');
    assert.equal(record?.app, 'fresh');
    assert.deepEqual(record?.containers, [c1]);
    assert.deepEqual(resolver.resolve('fresh.localhost'), record, 'then served from the cache');
  });

  test('the deploy that creates a name clears its negative entry before the negative TTL', async (t) => {
    const { h, resolver } = await setup(t, 'rr-negative', { negativeTtlMs: 600_000 });
    assert.equal(await resolver.resolve('later.localhost'), null);
    assert.equal(resolver.resolve('later.localhost'), null, 'the unknown name is cached');
    await applied(resolver, await h.deploy('later', [c1]));
    assert.equal((await resolver.resolve('later.localhost'))?.app, 'later');
  });

  test('a scale changes the containers routed to within milliseconds', async (t) => {
    const { h, resolver } = await setup(t, 'rr-scale');
    await applied(resolver, await h.deploy('grow', [c1]));
    assert.deepEqual((await resolver.resolve('grow.localhost'))?.containers, [c1]);
    const reply = await h.send({ app: 'grow', type: 'scale', containers: [c1, c2, c3] });
    assert.equal(reply.status, 200);
    const started = performance.now();
    let seen: HostRecord | null = null;
    while (performance.now() - started < 1000) {
      seen = await resolver.resolve('grow.localhost');
      if (seen?.containers.length === 3) break;
      await new Promise((r) => setImmediate(r));
    }
    const delay = performance.now() - started;
    t.diagnostic(`scale visible ${delay.toFixed(2)} ms after the control plane answered`);
    assert.deepEqual(seen?.containers, [c1, c2, c3], 'the new containers within 1 s');
  });

  test('stop routes to a stopped app; delete leaves no route', async (t) => {
    const { h, resolver } = await setup(t, 'rr-lifecycle');
    await applied(resolver, await h.deploy('brief', [c1]));
    assert.equal((await resolver.resolve('brief.localhost'))?.status, 'running');
    await applied(resolver, await h.send({ app: 'brief', type: 'stop' }));
    const stopped = await resolver.resolve('brief.localhost');
    assert.equal(stopped?.status, 'stopped');
    assert.deepEqual(stopped?.containers, []);
    await applied(resolver, await h.send({ app: 'brief', type: 'delete' }));
    assert.equal(await resolver.resolve('brief.localhost'), null);
  });

  test('custom and wildcard domains follow domains events', async (t) => {
    const { h, resolver } = await setup(t, 'rr-domains', { negativeTtlMs: 600_000 });
    await applied(resolver, await h.deploy('shop', [c1]));
    assert.equal(await resolver.resolve('eu.shop-rr.test'), null);
    await applied(resolver, await h.send({ app: 'shop', type: 'domains', domains: ['*.shop-rr.test'] }));
    assert.equal((await resolver.resolve('eu.shop-rr.test'))?.app, 'shop', 'negative entry dropped by the wildcard');
    await applied(resolver, await h.send({ app: 'shop', type: 'scale', containers: [c2] }));
    assert.deepEqual((await resolver.resolve('eu.shop-rr.test'))?.containers, [c2], 'rewritten wildcard re-read');
    await applied(resolver, await h.send({ app: 'shop', type: 'domains', domains: [] }));
    assert.equal(await resolver.resolve('eu.shop-rr.test'), null, 'removed wildcard');
  });

  test('an invalidation racing an in-flight lookup leaves no stale route', async (t) => {
    const { h, resolver } = await setup(t, 'rr-race');
    await applied(resolver, await h.deploy('race', [c1]));

    // The first lookup reads Redis, then is held while the scale is applied and its
    // invalidation arrives: its (old) answer comes back after the invalidation.
    const find = resolver.store.find.bind(resolver.store);
    let read = ignore;
    let release = ignore;
    const hasRead = new Promise<void>((r) => (read = r));
    const released = new Promise<void>((r) => (release = r));
    let holdNext = true;
    resolver.store.find = async (hostname: string): Promise<HostMatch | null> => {
      const match = await find(hostname);
      if (holdNext) {
        holdNext = false;
        read();
        await released;
      }
      return match;
    };

    const first = resolver.resolve('race.localhost');
    await hasRead;
    await applied(resolver, await h.send({ app: 'race', type: 'scale', containers: [c2] }));
    const during = await Promise.race([
      resolver.resolve('race.localhost'),
      new Promise<'joined the held lookup'>((r) => setTimeout(() => r('joined the held lookup'), 2000).unref()),
    ]);
    assert.notEqual(during, 'joined the held lookup');
    assert.deepEqual((during as HostRecord | null)?.containers, [c2]);
    release();
    assert.deepEqual((await first)?.containers, [c1], 'the held lookup read before the scale');
    const after = resolver.resolve('race.localhost');
    assert.deepEqual((await after)?.containers, [c2], 'its old answer was not cached');
    assert.equal(resolver.cache.stats.discarded, 1);
  });

  test('a scale re-reads a route in use before any request; a refresh-ahead overtaken by the next change is not stored', async (t) => {
    const { h, resolver, metrics } = await setup(t, 'rr-ahead');
    await applied(resolver, await h.deploy('ahead', [c1]));
    assert.deepEqual((await resolver.resolve('ahead.localhost'))?.containers, [c1]);

    await applied(resolver, await h.send({ app: 'ahead', type: 'scale', containers: [c2] }));
    await until(() => resolver.cache.stats.refreshed === 1 && resolver.cache.inFlight === 0, 'the refresh-ahead');
    const next = resolver.resolve('ahead.localhost');
    assert.ok(!isPromise(next), 'the first request after the scale is a cache hit');
    assert.deepEqual((next as HostRecord | null)?.containers, [c2]);

    // The next refresh-ahead reads Redis, then is held while another scale is applied.
    const findMany = resolver.store.findMany.bind(resolver.store);
    let read = ignore;
    let release = ignore;
    const hasRead = new Promise<void>((r) => (read = r));
    const released = new Promise<void>((r) => (release = r));
    let holdNext = true;
    resolver.store.findMany = async (hostnames: readonly string[]) => {
      const answers = await findMany(hostnames);
      if (holdNext) {
        holdNext = false;
        read();
        await released;
      }
      return answers;
    };
    await applied(resolver, await h.send({ app: 'ahead', type: 'scale', containers: [c3] }));
    await Promise.race([hasRead, new Promise((_, reject) => setTimeout(() => reject(new Error('no refresh-ahead')), 5000).unref())]);
    await applied(resolver, await h.send({ app: 'ahead', type: 'scale', containers: [c1, c2] }));
    await until(() => resolver.cache.stats.refreshed === 3 && resolver.cache.inFlight === 0, 'the second refresh-ahead');
    assert.deepEqual((resolver.resolve('ahead.localhost') as HostRecord | null)?.containers, [c1, c2]);
    release();
    await until(() => resolver.cache.stats.discarded === 1, 'the held answer discarded');
    assert.deepEqual((resolver.resolve('ahead.localhost') as HostRecord | null)?.containers, [c1, c2], 'the held [c3] was not stored');

    resolver.cache.publishMetrics();
    const { values } = await metrics.refreshAhead.get();
    assert.equal(values[0]?.value, 3, 'router_route_refresh_ahead_total');
  });

  test('a malformed message or a version gap flushes the cache', async (t) => {
    const { h, resolver, metrics } = await setup(t, 'rr-gap');
    await applied(resolver, await h.deploy('gap', [c1]));
    await resolver.resolve('gap.localhost');
    assert.ok(!isPromise(resolver.resolve('gap.localhost')), 'cached');

    await h.redis.publish(h.keys.invalidationChannel, 'not json at all');
    await until(async () => (await counter(metrics, 'malformed')) === 1, 'the malformed message');
    assert.ok(isPromise(resolver.resolve('gap.localhost')), 'flushed: re-read');
    await resolver.resolve('gap.localhost');
    assert.ok(!isPromise(resolver.resolve('gap.localhost')));

    const last = resolver.status().lastVersion;
    const flushes = await counter(metrics, 'flush');
    const lost = { v: 1, app: 'ghost', hosts: [], certs: [], version: last + 5 };
    await h.redis.publish(h.keys.invalidationChannel, JSON.stringify(lost));
    await until(() => resolver.status().lastVersion === last + 5, 'the gap message');
    assert.equal(await counter(metrics, 'flush'), flushes + 1);
    const reread = resolver.resolve('gap.localhost');
    assert.ok(isPromise(reread), 'flushed: re-read');
    assert.deepEqual((await reread)?.containers, [c1]);
  });

  test('PINGs keep the subscriber provably alive while nothing changes', async (t) => {
    const { resolver, metrics } = await setup(t, 'rr-ping', { pingIntervalMs: 50 });
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(resolver.status().silenceMs < 400, `silence ${resolver.status().silenceMs} ms`);
    assert.equal(resolver.ready(1000), true);
    assert.equal((await metrics.subscriberUp.get()).values[0]?.value, 1);
  });

  test('a subscriber connection silent for too long is re-established, and the cache flushed', async (t) => {
    // No PING is ever answered; the clock then jumps a minute ahead.
    const sub = new Redis(redisUrl());
    (sub as unknown as { ping: () => Promise<string> }).ping = () => new Promise<string>(ignore);
    t.after(() => sub.disconnect());
    let offset = 0;
    const { resolver, metrics } = await setup(t, 'rr-silence', { subscriber: sub, pingIntervalMs: 20, clock: () => performance.now() + offset });
    const flushes = await counter(metrics, 'flush');
    let reconnects = 0;
    sub.on('reconnecting', () => reconnects++);
    offset += 60_000;
    await until(async () => reconnects > 0 && resolver.status().subscribed && (await counter(metrics, 'flush')) > flushes, 'a resubscription');
    assert.ok(resolver.status().silenceMs < 5000);
  });

  test('certificate changes and flushes reach the TLS layer callbacks', async (t) => {
    const certs: string[][] = [];
    let flushes = 0;
    const { h, resolver } = await setup(t, 'rr-certs', { onCerts: (names) => certs.push(names), onFlush: () => flushes++ });
    assert.ok(flushes >= 1, 'the first subscription flushed');
    await applied(resolver, await h.deploy('tls', [c1]));
    await applied(resolver, await h.send({ app: 'tls', type: 'domains', domains: ['www.tls-rr.test'] }));
    const cert = await selfSigned({ sans: ['www.tls-rr.test'] });
    const flushesBefore = flushes;
    await applied(resolver, await h.send({ app: 'tls', type: 'certificate', certificate: { domain: 'www.tls-rr.test', cert: cert.chainPem, key: cert.keyPem } }));
    assert.deepEqual(certs, [['www.tls-rr.test']]);
    assert.equal(flushes, flushesBefore, 'an applied message is no flush');
  });

  test('Redis unreachable at start: start() returns, lookups fail fast, not ready', async (t) => {
    const port = await closedPort();
    const address = { redisUrl: new URL(`redis://127.0.0.1:${port}`), redisSentinels: undefined, redisSentinelName: '' };
    const redis = connectRedis(address, { connectionName: 'rr-test', commandTimeoutMs: 1000 });
    redis.on('error', ignore);
    const resolver = new RedisRouteResolver(
      resolverOptions(redis, new KeySchema('t:nowhere:'), new RouterMetrics(10), { startTimeoutMs: 200 }),
    );
    t.after(async () => {
      await resolver.close();
      redis.disconnect();
    });
    const started = Date.now();
    await resolver.start();
    assert.ok(Date.now() - started < 2000);
    await assert.rejects(async () => resolver.resolve('any.localhost'), StoreUnavailableError);
    assert.equal(resolver.ready(60_000), false);
    assert.equal(resolver.status().subscribed, false);
  });
});

describe('route resolver through a Redis outage', () => {
  test('cached routes keep serving while Redis is down; changes missed meanwhile are served after', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rr-outage-'));
    let server: EmbeddedRedis = await startEmbeddedRedis({ persistDir: dir });
    const port = server.port;
    const h = await startHarness('rr-outage', { REDIS_URL: server.url });
    // What the router does: fail-fast lookups, and a subscriber connection of its own.
    const address = { redisUrl: new URL(server.url), redisSentinels: undefined, redisSentinelName: '' };
    const redis = connectRedis(address, { connectionName: 'rr-test', commandTimeoutMs: 1000 });
    const sub = connectRedis(address, { connectionName: 'rr-test-sub' });
    redis.on('error', ignore);
    sub.on('error', ignore);
    const resolver = new RedisRouteResolver(resolverOptions(redis, h.keys, new RouterMetrics(10)));
    t.after(async () => {
      await resolver.close();
      redis.disconnect();
      sub.disconnect();
      await h.close().catch(ignore);
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    });
    const withSub = new RedisRouteResolver(resolverOptions(redis, h.keys, new RouterMetrics(10), { subscriber: sub }));
    t.after(() => withSub.close());
    await resolver.start();
    await withSub.start();

    await applied(withSub, await h.deploy('steady', [c1]));
    await until(() => resolver.status().lastVersion === withSub.status().lastVersion, 'both resolvers in sync');
    for (const r of [resolver, withSub]) assert.deepEqual((await r.resolve('steady.localhost'))?.containers, [c1]);

    await server.stop();
    await until(() => !resolver.status().subscribed && !withSub.status().subscribed, 'the subscribers to notice');
    for (const r of [resolver, withSub]) {
      const cached = r.resolve('steady.localhost');
      assert.ok(!isPromise(cached), 'a cached route answers without Redis');
      assert.deepEqual((cached as HostRecord | null)?.containers, [c1]);
      const started = Date.now();
      await assert.rejects(async () => r.resolve('unseen.localhost'), StoreUnavailableError);
      assert.ok(Date.now() - started < 1500, 'failed fast');
      assert.equal(r.ready(60_000), false);
    }

    // Keep one subscriber away while Redis comes back and the app changes: it cannot hear of it.
    sub.disconnect();
    server = await startEmbeddedRedis({ persistDir: dir, port });
    await until(async () => (await h.send({ app: 'steady', type: 'scale', containers: [c2] })).status === 200, 'the control plane to write', 10_000);
    await until(() => resolver.status().subscribed, 'the auto-reconnected subscriber', 10_000);
    assert.deepEqual((await resolver.resolve('steady.localhost'))?.containers, [c2], 'current after the automatic reconnect');
    const held = withSub.resolve('steady.localhost');
    assert.ok(!isPromise(held));
    assert.deepEqual((held as HostRecord | null)?.containers, [c1], 'not subscribed: nothing told it');

    await sub.connect();
    await until(() => withSub.status().subscribed, 'the held subscriber to resubscribe', 10_000);
    assert.deepEqual((await withSub.resolve('steady.localhost'))?.containers, [c2], 'the missed change is served');

    // And messages flow again on the reconnected subscriptions.
    const reply = await h.send({ app: 'steady', type: 'scale', containers: [c3] });
    await applied(resolver, reply);
    await applied(withSub, reply);
    for (const r of [resolver, withSub]) assert.deepEqual((await r.resolve('steady.localhost'))?.containers, [c3]);
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { KeySchema } from '../../proto/keys.js';
import { DEFAULT_SETTINGS, decodeHostRecord, encodeOpen, sealRecord, type HostRecord } from '../../proto/records.js';
import { deleteByPrefix, redisUrl, uniquePrefix } from '../../test-support/redis.js';
import { HostStore, UnreadableRecordError, type HostMatch, type HostSource } from '../src/routing/host-store.js';
import { RouteCache } from '../src/routing/route-cache.js';
import { StoreUnavailableError } from '../src/routing/route-lookup.js';

let redis: Redis;
let keys: KeySchema;
let store: HostStore;
let version = 0;

before(() => {
  redis = new Redis(redisUrl());
  keys = new KeySchema(uniquePrefix('route-cache'));
  store = new HostStore(redis, keys);
});

after(async () => {
  await deleteByPrefix(redis, keys.prefix);
  redis.disconnect();
});

/** Writes a host record the way the apply script does (sealed with the next version). */
async function put(name: string, app: string, port = 8000): Promise<HostRecord> {
  const open = encodeOpen<HostRecord>({
    v: 1,
    app,
    status: 'running',
    containers: [{ id: `${app}-1`, host: '10.0.0.1', port }],
    settings: { ...DEFAULT_SETTINGS },
  });
  const raw = sealRecord(open, ++version);
  await redis.set(keys.host(name), raw);
  return decodeHostRecord(raw);
}

/** The real HostStore, counted; can fail on demand, or hold its answer until released. */
class Probe implements HostSource {
  calls = 0;
  failing = false;
  /** The names of each batched lookup (refresh-ahead), in order. */
  batches: string[][] = [];
  private held: { hostname: string; read: () => void; release: Promise<void> } | undefined;
  private heldBatch: { read: () => void; release: Promise<void> } | undefined;

  async findMany(hostnames: readonly string[]): Promise<Array<HostMatch | null | Error>> {
    this.batches.push([...hostnames]);
    if (this.failing) throw new Error('connection refused');
    const answers = await store.findMany(hostnames);
    const held = this.heldBatch;
    if (held !== undefined) {
      this.heldBatch = undefined;
      held.read();
      await held.release;
    }
    return answers;
  }

  /** The next batched lookup reads Redis, then waits until released. */
  holdBatch(): { read: Promise<void>; release: () => void } {
    let release = (): void => undefined;
    let read = (): void => undefined;
    const readP = new Promise<void>((r) => (read = r));
    const releaseP = new Promise<void>((r) => (release = r));
    this.heldBatch = { read, release: releaseP };
    return { read: readP, release };
  }

  async find(hostname: string): Promise<HostMatch | null> {
    this.calls++;
    if (this.failing) throw new Error('connection refused');
    const match = await store.find(hostname);
    const held = this.held;
    if (held !== undefined && held.hostname === hostname) {
      this.held = undefined;
      held.read();
      await held.release;
    }
    return match;
  }

  /** The next lookup of `hostname` reads Redis, then waits; `read` settles once it has read. */
  hold(hostname: string): { read: Promise<void>; release: () => void } {
    let release = (): void => undefined;
    let read = (): void => undefined;
    const readP = new Promise<void>((r) => (read = r));
    const releaseP = new Promise<void>((r) => (release = r));
    this.held = { hostname, read, release: releaseP };
    return { read: readP, release };
  }
}

/** `promise`, or a failure after `ms`: a test waiting for something that never happens must end. */
function within<T>(promise: Promise<T>, what: string, ms = 2000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function unique(label: string): string {
  return `${label}-${randomBytes(3).toString('hex')}`;
}

function isPromise(value: unknown): value is Promise<unknown> {
  return value instanceof Promise;
}

async function idle(cache: RouteCache): Promise<void> {
  // A refresh-ahead starts in a microtask after the invalidation: let it start first.
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 1000 && cache.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 1));
  assert.equal(cache.inFlight, 0, 'lookups still in flight');
}

describe('route cache', () => {
  test('a cached route answers synchronously, without Redis', async () => {
    const host = `${unique('hit')}.a.test`;
    const record = await put(host, 'hit');
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    const first = cache.resolve(host);
    assert.ok(isPromise(first), 'a cold name is looked up');
    assert.deepEqual(await first, record);
    const second = cache.resolve(host);
    assert.ok(!isPromise(second), 'a hit is not a promise');
    assert.deepEqual(second, record);
    assert.equal(probe.calls, 1);
    assert.deepEqual([cache.stats.hit, cache.stats.miss, cache.stats.found], [1, 1, 1]);
  });

  test('1000 concurrent requests for a cold host make one Redis lookup', async () => {
    const host = `${unique('cold')}.a.test`;
    const record = await put(host, 'cold');
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    const pending = Array.from({ length: 1000 }, () => cache.resolve(host));
    assert.ok(pending.every(isPromise));
    const results = await Promise.all(pending);
    assert.equal(probe.calls, 1);
    for (const r of results) assert.deepEqual(r, record);
    assert.equal(cache.stats.miss, 1000, 'miss counts callers');
    assert.equal(cache.stats.found, 1, 'found counts lookups');
  });

  test('unknown names are cached as unknown: 1000 random names twice → 1000 lookups', async () => {
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 5000 });
    const names = Array.from({ length: 1000 }, (_, i) => `${unique(`rnd${i}`)}.nowhere.test`);
    assert.deepEqual(new Set(await Promise.all(names.map((n) => cache.resolve(n)))), new Set([null]));
    assert.equal(probe.calls, 1000);
    for (const n of names) assert.equal(cache.resolve(n), null, 'a known-unknown name answers null synchronously');
    assert.equal(probe.calls, 1000);
    assert.equal(cache.stats.negative, 1000);
    assert.equal(cache.stats.notFound, 1000);
  });

  test('a flood of unknown names cannot evict the routes of real apps', async () => {
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 10, negativeMax: 50 });
    const real = await Promise.all(Array.from({ length: 5 }, async (_, i) => {
      const host = `${unique(`real${i}`)}.a.test`;
      await put(host, `real${i}`);
      return host;
    }));
    for (const host of real) await cache.resolve(host);
    const flood = Array.from({ length: 500 }, (_, i) => `${unique(`flood${i}`)}.nowhere.test`);
    await Promise.all(flood.map((n) => cache.resolve(n)));
    const calls = probe.calls;
    for (const host of real) assert.ok(!isPromise(cache.resolve(host)), `${host} still cached`);
    assert.equal(probe.calls, calls, 'no Redis lookup for the real routes');
    assert.equal(cache.negativeSize, 50, 'negatives stay within their own bound');
  });

  test('a negative entry is forgotten after negativeTtlMs', async () => {
    let now = 1_000;
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100, negativeTtlMs: 5_000, clock: () => now });
    const host = `${unique('neg')}.a.test`;
    assert.equal(await cache.resolve(host), null);
    now += 4_999;
    assert.equal(cache.resolve(host), null);
    assert.equal(probe.calls, 1);
    const record = await put(host, 'neg');
    now += 1;
    const again = cache.resolve(host);
    assert.ok(isPromise(again), 'expired: looked up again');
    assert.deepEqual(await again, record);
    assert.equal(probe.calls, 2);
  });

  test('past ttlMs a route is served stale while exactly one background refresh runs', async () => {
    let now = 0;
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100, ttlMs: 60_000, errorRetryMs: 1_000, clock: () => now });
    const host = `${unique('ttl')}.a.test`;
    const v1 = await put(host, 'ttl', 1);
    assert.deepEqual(await cache.resolve(host), v1);
    const v2 = await put(host, 'ttl', 2);
    now = 59_999;
    assert.deepEqual(cache.resolve(host), v1, 'fresh until the TTL');
    now = 60_000;
    for (let i = 0; i < 100; i++) {
      const r = cache.resolve(host);
      assert.ok(!isPromise(r), 'stale is served synchronously');
      assert.deepEqual(r, v1);
    }
    assert.equal(probe.calls, 2, 'one refresh for 100 stale reads');
    assert.equal(cache.stats.stale, 100);
    await idle(cache);
    assert.deepEqual(cache.resolve(host), v2, 'the refresh was stored');
    assert.equal(cache.stats.hit, 2);

    // A failing refresh keeps the old route and is retried after errorRetryMs, not per request.
    now = 120_000;
    probe.failing = true;
    assert.deepEqual(cache.resolve(host), v2);
    await idle(cache);
    assert.equal(probe.calls, 3);
    now += 999;
    assert.deepEqual(cache.resolve(host), v2);
    assert.equal(probe.calls, 3, 'no retry before errorRetryMs');
    now += 1;
    assert.deepEqual(cache.resolve(host), v2);
    assert.equal(probe.calls, 4);
    await idle(cache);
  });

  test('wildcards: resolved through *.rest, invalidated through it, exact names unaffected', async () => {
    const zone = `${unique('x')}.test`;
    const other = `${unique('y')}.test`;
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100, negativeTtlMs: 60_000 });
    const a = await put(`*.${zone}`, 'wild-a');
    assert.deepEqual(await cache.resolve(`shop.${zone}`), a);
    assert.equal(await cache.resolve(`nothing.${other}`), null);
    assert.equal(cache.indexedHostnames, 2, 'the wildcard route and the negative entry are indexed');

    const b = await put(`*.${zone}`, 'wild-b');
    assert.deepEqual(cache.resolve(`shop.${zone}`), a, 'nothing invalidated yet');
    cache.invalidate([`*.${zone}`]);
    const reread = cache.resolve(`shop.${zone}`);
    assert.ok(isPromise(reread), 'invalidating the wildcard forces a re-read');
    assert.deepEqual(await reread, b);

    const c = await put(`*.${other}`, 'wild-c');
    cache.invalidate([`*.${other}`]);
    assert.deepEqual(await cache.resolve(`nothing.${other}`), c, 'a negative entry under a new wildcard is dropped');

    const d = await put(`shop.${zone}`, 'exact-d');
    cache.invalidate([`shop.${zone}`]);
    assert.deepEqual(await cache.resolve(`shop.${zone}`), d, 'an exact name now exists and wins');
    const calls = probe.calls;
    cache.invalidate([`*.${zone}`]);
    assert.deepEqual(cache.resolve(`shop.${zone}`), d, 'an exactly-resolved name ignores its wildcard');
    assert.equal(probe.calls, calls);
  });

  test('the wildcard index follows LRU evictions', async () => {
    const zone = `${unique('evict')}.test`;
    const cache = new RouteCache(new Probe(), { max: 10 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => cache.resolve(`n${i}.${zone}`)));
    assert.equal(cache.size, 10);
    assert.equal(cache.indexedHostnames, 10);
    cache.invalidate([`*.${zone}`]);
    assert.equal(cache.size, 0, 'negative entries under the wildcard are dropped');
    assert.equal(cache.indexedHostnames, 0);
  });

  test('flush makes every entry invalid: re-read, old answer kept for Redis failures', async () => {
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100, negativeTtlMs: 60_000 });
    const one = `${unique('f1')}.a.test`;
    const two = `${unique('f2')}.a.test`;
    const gone = `${unique('f3')}.a.test`;
    const r1 = await put(one, 'f1');
    const r2 = await put(two, 'f2');
    await cache.resolve(one);
    await cache.resolve(two);
    assert.equal(await cache.resolve(gone), null);
    assert.equal(probe.calls, 3);

    cache.flush();
    const r3 = await put(gone, 'f3');
    for (const [host, want] of [[one, r1], [two, r2], [gone, r3]] as const) {
      const r = cache.resolve(host);
      assert.ok(isPromise(r), `${host} re-read after the flush`);
      assert.deepEqual(await r, want);
    }
    assert.equal(probe.calls, 6);

    cache.flush();
    probe.failing = true;
    assert.deepEqual(await cache.resolve(one), r1, 'stale-if-error');
    assert.equal(cache.stats.stale, 1);
    await assert.rejects(async () => cache.resolve(`${unique('never')}.a.test`), StoreUnavailableError);
    probe.failing = false;
    assert.deepEqual(await cache.resolve(one), r1, 'still invalid: re-read once Redis answers');
    assert.deepEqual(cache.resolve(one), r1);
  });

  test('an invalidated route is re-read; a failed re-read serves the old route; a negative one just goes', async () => {
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100, negativeTtlMs: 60_000 });
    const host = `${unique('inv')}.a.test`;
    const unknown = `${unique('inv-unknown')}.a.test`;
    const v1 = await put(host, 'inv', 1);
    await cache.resolve(host);
    assert.equal(await cache.resolve(unknown), null);
    const v2 = await put(host, 'inv', 2);
    probe.failing = true;
    cache.invalidate([host, unknown]);
    assert.deepEqual(await cache.resolve(host), v1, 'Redis down: the last known route');
    await assert.rejects(async () => cache.resolve(unknown), StoreUnavailableError, 'the negative entry is gone');
    probe.failing = false;
    assert.deepEqual(await cache.resolve(host), v2);
    assert.deepEqual(cache.resolve(host), v2);
  });

  for (const overtake of ['invalidate', 'invalidate-wildcard', 'flush'] as const) {
    test(`a lookup overtaken by ${overtake} answers its callers but is not stored`, async () => {
      const zone = `${unique('race')}.test`;
      const host = `www.${zone}`;
      const probe = new Probe();
      const cache = new RouteCache(probe, { max: 100 });
      // Exact name for the exact invalidation, the wildcard for the others.
      const stored = overtake === 'invalidate' ? host : `*.${zone}`;
      const old = await put(stored, 'old');
      const held = probe.hold(host);
      const first = cache.resolve(host);
      await held.read;
      const fresh = await put(stored, 'new');
      if (overtake === 'flush') cache.flush();
      else cache.invalidate([stored]);
      const during = cache.resolve(host);
      assert.ok(isPromise(during));
      const stuck = new Promise<'joined the held lookup'>((r) => setTimeout(() => r('joined the held lookup'), 2000).unref());
      assert.deepEqual(await Promise.race([during, stuck]), fresh, 'a caller after the invalidation does not join the old lookup');
      held.release();
      assert.deepEqual(await first, old, 'the old lookup answers its own callers');
      assert.deepEqual(cache.resolve(host), fresh, 'and did not overwrite the newer answer');
      assert.equal(cache.stats.discarded, 1);
    });
  }

  test('an overtaken lookup with no later caller leaves nothing cached', async () => {
    const host = `${unique('race2')}.a.test`;
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    const old = await put(host, 'old');
    const held = probe.hold(host);
    const first = cache.resolve(host);
    await held.read;
    const fresh = await put(host, 'new');
    cache.invalidate([host]);
    held.release();
    assert.deepEqual(await first, old);
    const next = cache.resolve(host);
    assert.ok(isPromise(next), 'the old answer was not stored');
    assert.deepEqual(await next, fresh);
  });

  test('an unreadable record is a store failure, not an unknown host', async () => {
    const host = `${unique('bad')}.a.test`;
    await redis.set(keys.host(host), '{"v":2,"app":"from-the-future","version":1}');
    await put(`*.${host.slice(host.indexOf('.') + 1)}`, 'wild');
    await assert.rejects(store.lookup(host), UnreadableRecordError, 'the wildcard is not used instead');
    const cache = new RouteCache(new Probe(), { max: 100 });
    await assert.rejects(async () => cache.resolve(host), StoreUnavailableError);
    assert.equal(cache.size, 0, 'nothing cached');
  });
});

describe('refresh-ahead: invalidated routes re-read before any request asks', () => {
  test('an invalidated route in use is re-read at once: the next request is a hit on the new route', async () => {
    const host = `${unique('ahead')}.a.test`;
    await put(host, 'ahead', 1);
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    await cache.resolve(host);
    const v2 = await put(host, 'ahead', 2);
    cache.invalidate([host]);
    await idle(cache);
    assert.deepEqual(probe.batches, [[host]], 'one lookup, before any request');
    const next = cache.resolve(host);
    assert.ok(!isPromise(next), 'answered from the cache');
    assert.deepEqual(next, v2);
    assert.deepEqual([cache.stats.refreshed, cache.stats.found, cache.stats.miss, cache.stats.hit], [1, 2, 1, 1]);
  });

  test('every name invalidated in one turn is read in one round trip, wildcard-resolved names included', async () => {
    const zone = `${unique('batch')}.test`;
    const exact = [`a.${zone}`, `b.${zone}`, `c.${zone}`];
    for (const h of exact) await put(h, 'exact');
    await put(`*.${zone}`, 'wild');
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    for (const h of [...exact, `shop.${zone}`]) await cache.resolve(h);
    // Two messages delivered in one read: two invalidate calls in the same turn.
    cache.invalidate([exact[0]!]);
    cache.invalidate([exact[1]!, exact[2]!, `*.${zone}`]);
    await idle(cache);
    assert.equal(probe.batches.length, 1);
    assert.deepEqual([...probe.batches[0]!].sort(), [...exact, `shop.${zone}`].sort());
    for (const h of [...exact, `shop.${zone}`]) assert.ok(!isPromise(cache.resolve(h)), `${h} cached again`);
  });

  test('names not cached, negative entries and routes unused for refreshAheadMs cost no lookup', async () => {
    let now = 0;
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100, negativeTtlMs: 600_000, refreshAheadMs: 10_000, clock: () => now });
    const idleHost = `${unique('unused')}.a.test`;
    const busyHost = `${unique('busy')}.a.test`;
    // Its own zone: other tests here put `*.a.test`.
    const unknown = `neg.${unique('neg-zone')}.test`;
    await put(idleHost, 'unused');
    await put(busyHost, 'busy');
    await cache.resolve(idleHost);
    await cache.resolve(busyHost);
    assert.equal(await cache.resolve(unknown), null);
    now = 10_001;
    assert.ok(!isPromise(cache.resolve(busyHost)), 'served: used now');
    const calls = probe.calls;
    const never = Array.from({ length: 1000 }, (_, i) => `${unique(`never${i}`)}.a.test`);
    cache.invalidate(never);
    cache.invalidate([`*.${unique('nozone')}.test`, unknown, idleHost]);
    await idle(cache);
    assert.deepEqual(probe.batches, [], 'nothing re-read');
    assert.equal(probe.calls, calls);
    assert.equal(cache.stats.refreshed, 0);
    cache.invalidate([busyHost]);
    await idle(cache);
    assert.deepEqual(probe.batches, [[busyHost]], 'a route served within refreshAheadMs is re-read');

    const off = new RouteCache(probe, { max: 100, refreshAheadMs: 0 });
    await off.resolve(busyHost);
    off.invalidate([busyHost]);
    await idle(off);
    assert.equal(probe.batches.length, 1, 'refreshAheadMs 0: never');
  });

  test('a route only refreshed ahead, never requested since, is not re-read forever', async () => {
    let now = 0;
    const host = `${unique('stale-use')}.a.test`;
    await put(host, 'stale-use');
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100, refreshAheadMs: 10_000, clock: () => now });
    await cache.resolve(host);
    now = 5_000;
    cache.invalidate([host]);
    await idle(cache);
    now = 10_001;
    cache.invalidate([host]);
    await idle(cache);
    assert.equal(probe.batches.length, 1, 'the refreshed entry kept its last real use');
  });

  test('a request during a refresh-ahead joins it', async () => {
    const host = `${unique('join')}.a.test`;
    await put(host, 'join', 1);
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    await cache.resolve(host);
    const v2 = await put(host, 'join', 2);
    const held = probe.holdBatch();
    cache.invalidate([host]);
    await within(held.read, 'the refresh-ahead');
    const during = cache.resolve(host);
    assert.ok(isPromise(during));
    held.release();
    assert.deepEqual(await during, v2);
    assert.equal(probe.calls, 1, 'no lookup of its own');
    assert.equal(probe.batches.length, 1);
    assert.deepEqual(cache.resolve(host), v2);
  });

  for (const overtake of ['invalidate', 'invalidate-wildcard', 'flush'] as const) {
    test(`a refresh-ahead overtaken by ${overtake} is not stored`, async () => {
      const zone = `${unique('ahead-race')}.test`;
      const host = `www.${zone}`;
      const stored = overtake === 'invalidate' ? host : `*.${zone}`;
      await put(stored, 'v1');
      const probe = new Probe();
      const cache = new RouteCache(probe, { max: 100 });
      await cache.resolve(host);
      await put(stored, 'v2');
      const held = probe.holdBatch();
      cache.invalidate([stored]);
      await within(held.read, 'the refresh-ahead');
      const v3 = await put(stored, 'v3');
      if (overtake === 'flush') cache.flush();
      else cache.invalidate([stored]);
      await idle(cache);
      if (overtake === 'flush') {
        assert.deepEqual(await cache.resolve(host), v3, 'a flush leaves the re-read to the next request');
      } else {
        assert.deepEqual(cache.resolve(host), v3, 'a new refresh-ahead read v3 before any request');
      }
      held.release();
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(cache.resolve(host), v3, 'the held answer (v2) did not overwrite v3');
      assert.equal(cache.stats.discarded, 1);
      assert.equal(probe.batches.length, overtake === 'flush' ? 1 : 2);
    });
  }

  test('a refresh-ahead whose entry was evicted meanwhile is not stored', async () => {
    const one = `${unique('evicted')}.a.test`;
    const two = `${unique('evictor')}.a.test`;
    await put(one, 'evicted');
    await put(two, 'evictor');
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 1 });
    await cache.resolve(one);
    const held = probe.holdBatch();
    cache.invalidate([one]);
    await within(held.read, 'the refresh-ahead');
    await cache.resolve(two);
    held.release();
    await idle(cache);
    assert.ok(!isPromise(cache.resolve(two)), 'the name in use stays');
    const again = cache.resolve(one);
    assert.ok(isPromise(again), 'the evicted name was not put back');
    await again;
  });

  test('a failed refresh-ahead keeps the old route for Redis failures; the next request re-reads', async () => {
    const host = `${unique('ahead-fail')}.a.test`;
    const v1 = await put(host, 'ahead-fail', 1);
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    await cache.resolve(host);
    const v2 = await put(host, 'ahead-fail', 2);
    probe.failing = true;
    cache.invalidate([host]);
    await idle(cache);
    assert.equal(cache.stats.errors, 1);
    assert.deepEqual(await cache.resolve(host), v1, 'stale-if-error');
    probe.failing = false;
    const next = cache.resolve(host);
    assert.ok(isPromise(next), 'still invalid: re-read');
    assert.deepEqual(await next, v2);
  });

  test('an unreadable record fails its own name only, never turned into "unknown"', async () => {
    const zone = `${unique('ahead-bad')}.test`;
    const good = `good.${zone}`;
    const bad = `bad.${zone}`;
    await put(good, 'good', 1);
    const b1 = await put(bad, 'bad', 1);
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 100 });
    await cache.resolve(good);
    await cache.resolve(bad);
    const g2 = await put(good, 'good', 2);
    await redis.set(keys.host(bad), '{"v":2,"app":"from-the-future","version":1}');
    cache.invalidate([good, bad]);
    await idle(cache);
    assert.equal(probe.batches.length, 1);
    assert.deepEqual(cache.resolve(good), g2);
    assert.deepEqual(await cache.resolve(bad), b1, 'served stale, not 404');
  });

  test('a wildcard naming thousands of cached hostnames re-reads at most 1024, in batches of 128', async () => {
    const zone = `${unique('many')}.test`;
    await put(`*.${zone}`, 'many');
    const probe = new Probe();
    const cache = new RouteCache(probe, { max: 2000 });
    const names = Array.from({ length: 1100 }, (_, i) => `n${i}.${zone}`);
    await Promise.all(names.map((n) => cache.resolve(n)));
    cache.invalidate([`*.${zone}`]);
    await idle(cache);
    assert.equal(cache.stats.refreshed, 1024);
    assert.equal(probe.batches.length, 8);
    assert.ok(probe.batches.every((b) => b.length === 128));
    const left = names.filter((n) => isPromise(cache.resolve(n)));
    assert.equal(left.length, 76, 'the rest are re-read by their next request');
    await Promise.all(left.map((n) => cache.resolve(n)));
  });

  test('HostStore.findMany answers each name as find would, in one MGET', async () => {
    const zone = `${unique('many-store')}.test`;
    const exact = await put(`www.${zone}`, 'exact');
    const wild = await put(`*.${zone}`, 'wild');
    await redis.set(keys.host(`bad.${zone}`), 'not a record');
    const names = [`www.${zone}`, `api.${zone}`, `bad.${zone}`, `none.${unique('nowhere')}.test`, 'localhost'];
    const answers = await store.findMany(names);
    assert.deepEqual(answers[0], { record: exact, matched: `www.${zone}` });
    assert.deepEqual(answers[1], { record: wild, matched: `*.${zone}` });
    assert.ok(answers[2] instanceof UnreadableRecordError, 'an unreadable exact record is an error, not the wildcard');
    assert.equal(answers[3], null);
    assert.equal(answers[4], null);
    for (const [i, name] of names.entries()) {
      if (i === 2) await assert.rejects(store.find(name), UnreadableRecordError);
      else assert.deepEqual(await store.find(name), answers[i]);
    }
    assert.deepEqual(await store.findMany([]), []);
  });
});

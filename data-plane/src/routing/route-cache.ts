/**
 * The router's in-process route cache, after Kong's lua-resty-mlcache: a bounded LRU of
 * positive (HostRecord) and negative (unknown name) answers in front of one Redis round trip,
 * kept current by the invalidation channel rather than by its TTLs.
 *
 * - A fresh entry answers synchronously: no promise, no Redis call, no allocation.
 * - A miss costs one lookup per name however many callers wait for it (single flight).
 * - Past `ttlMs` a positive entry is still served (`stale`) while one background refresh
 *   runs; the TTL is only a safety net under the invalidations.
 * - Invalidated and flushed entries are re-read before they are served again, but kept so
 *   that a Redis outage serves them (stale-if-error) instead of failing the request.
 * - Refresh-ahead: an invalidated route that served a request recently is re-read at once,
 *   names of one event loop turn in one round trip, so the next request finds the new route
 *   instead of waiting for Redis. Names not cached (or long unused) cost nothing.
 *
 * The race of docs/ARCHITECTURE.md (an answer read before an invalidation, arriving after it)
 * is closed by per-lookup state: an invalidation naming the host, or a flush, marks the
 * lookup in flight as overtaken and detaches it from the single-flight map. Its callers still
 * get its answer (it was current when read) but it is not stored, and later callers read anew.
 * A refresh-ahead is such a lookup too, started after the invalidation that asked for it: it is
 * overtaken, and replaced, the same way.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { isWildcard, wildcardFor } from '../../../proto/names.js';
import type { HostRecord } from '../../../proto/records.js';
import type { RouterMetrics } from '../metrics.js';
import type { HostMatch, HostSource } from './host-store.js';
import { StoreUnavailableError } from './route-lookup.js';

export interface RouteCacheOptions {
  /** Hostnames kept (positive and negative entries together). */
  max: number;
  /** Safety-net age after which a positive entry is refreshed in the background. Default 60 s. */
  ttlMs?: number;
  /** How long an unknown name is remembered as unknown. Default 5 s. */
  negativeTtlMs?: number;
  /** Unknown hostnames remembered, apart from the routes (default: `max`). */
  negativeMax?: number;
  /** After a failed background refresh, how long before the next one. Default 1 s. */
  errorRetryMs?: number;
  /**
   * An invalidated route that answered a request within this long is re-read at once
   * (refresh-ahead); older ones wait for their next request. 0: never. Default: `ttlMs`.
   */
  refreshAheadMs?: number;
  /**
   * Milliseconds, monotonic; injectable so tests can expire entries without sleeping. Default:
   * performance.now() sampled every 50 ms (see `close()`).
   */
  clock?: () => number;
  /** Counters are published by `publishMetrics()`, not per request. */
  metrics?: RouterMetrics;
  log?: Logger;
}

/**
 * Cumulative counts. Every `resolve` call counts exactly once in hit, negative, stale or miss:
 * `miss` is per caller that waited for a lookup (1000 callers sharing one lookup count 1000
 * misses and one of found/notFound/errors); a caller served the old entry because the lookup
 * failed counts as `stale`.
 */
export interface RouteCacheStats {
  hit: number;
  negative: number;
  stale: number;
  miss: number;
  /** Redis lookups by outcome. */
  found: number;
  notFound: number;
  errors: number;
  /** Lookups answered but not stored because an invalidation or flush overtook them. */
  discarded: number;
  /** Invalidated routes re-read before any request asked (their outcomes count above too). */
  refreshed: number;
}

const DEFAULT_TTL_MS = 60_000;
const DEFAULT_NEGATIVE_TTL_MS = 5_000;
const DEFAULT_ERROR_RETRY_MS = 1_000;
const ERROR_LOG_INTERVAL_MS = 10_000;
/** TTLs are seconds; a clock this coarse is plenty and costs the hit path nothing. */
const CLOCK_TICK_MS = 50;
/** Names per MGET of a refresh-ahead (two keys each at most). */
const REFRESH_BATCH = 128;
/**
 * Names re-read ahead per event loop turn: a wildcard naming thousands of cached hostnames
 * must not turn into a burst on Redis; the rest are re-read by their next request, as before.
 */
const REFRESH_MAX = 1024;

// lru-cache's get/peek default their options argument to a fresh `{}` on every call; one
// shared object keeps the hit path allocation-free.
const GET_OPTIONS: LRUCache.GetOptions<string, Entry, unknown> = {};
const PEEK_OPTIONS: LRUCache.PeekOptions<string, Entry, unknown> = {};

const ignore = (): void => undefined;

class Entry {
  /** Set by an invalidation: re-read before serving, keep for stale-if-error. */
  invalid = false;
  /** Earliest time for the next background refresh (throttles refreshes while Redis fails). */
  retryAt = 0;

  constructor(
    /** null: the name is known to have no app. */
    readonly record: HostRecord | null,
    /** The wildcard whose invalidation must reach this entry, or null. */
    readonly indexedUnder: string | null,
    /** Entries from an older epoch were flushed. */
    readonly epoch: number,
    /** Positive: fresh until; negative: forgotten at. */
    readonly expiresAt: number,
    /** Last served to a request (or waited for by one): decides refresh-ahead. */
    public usedAt: number,
  ) {}
}

class Flight {
  /** An invalidation or flush overtook this lookup: its answer must not be stored. */
  detached = false;
  waiters = 0;
  promise!: Promise<HostRecord | null>;

  constructor(
    readonly hostname: string,
    readonly wildcard: string | null,
    readonly epoch: number,
  ) {}
}

export class RouteCache {
  readonly stats: RouteCacheStats = { hit: 0, negative: 0, stale: 0, miss: 0, found: 0, notFound: 0, errors: 0, discarded: 0, refreshed: 0 };
  private readonly published: RouteCacheStats = { ...this.stats };
  private readonly lru: LRUCache<string, Entry>;
  /**
   * Negative entries live apart (as mlcache's shm_miss does): a flood of random Host headers
   * then evicts only other unknown names, never the routes of real apps.
   */
  private readonly misses: LRUCache<string, Entry>;
  /** wildcard → cached hostnames that resolved through it or are negative under it. */
  private readonly byWildcard = new Map<string, Set<string>>();
  private flights = new Map<string, Flight>();
  private epoch = 0;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly errorRetryMs: number;
  private readonly refreshAheadMs: number;
  /** Invalidated names to re-read at the end of this turn (refresh-ahead), or none. */
  private pending: Set<string> | undefined;
  private closed = false;
  private readonly clock: () => number;
  private readonly metrics: RouterMetrics | undefined;
  private readonly log: Logger | undefined;
  private lastErrorLogAt = -Infinity;
  private suppressedErrors = 0;
  // performance.now() boxes a new heap number per call; reading a sampled value does not.
  private now = performance.now();
  private ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: HostSource,
    options: RouteCacheOptions,
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.negativeTtlMs = options.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS;
    this.errorRetryMs = options.errorRetryMs ?? DEFAULT_ERROR_RETRY_MS;
    this.refreshAheadMs = options.refreshAheadMs ?? this.ttlMs;
    if (options.clock !== undefined) {
      this.clock = options.clock;
    } else {
      this.clock = () => this.now;
      this.ticker = setInterval(() => {
        this.now = performance.now();
      }, CLOCK_TICK_MS).unref();
    }
    this.metrics = options.metrics;
    this.log = options.log;
    // The index follows the LRU exactly: whatever leaves it (eviction, replacement, delete)
    // leaves the index, so a wildcard invalidation never walks names long gone.
    this.lru = new LRUCache<string, Entry>({
      max: options.max,
      onInsert: (entry, hostname) => this.index(entry, hostname),
      dispose: (entry, hostname) => this.unindex(entry, hostname),
    });
    this.misses = new LRUCache<string, Entry>({
      max: options.negativeMax ?? options.max,
      onInsert: (entry, hostname) => this.index(entry, hostname),
      dispose: (entry, hostname) => this.unindex(entry, hostname),
    });
  }

  /** Entries held, positive and negative. */
  get size(): number {
    return this.lru.size + this.misses.size;
  }

  get negativeSize(): number {
    return this.misses.size;
  }

  /** Hostnames in the wildcard index (tests check it follows evictions). */
  get indexedHostnames(): number {
    let n = 0;
    for (const hosts of this.byWildcard.values()) n += hosts.size;
    return n;
  }

  /** Lookups in flight (attached ones: those a new caller would join). */
  get inFlight(): number {
    return this.flights.size;
  }

  /** `hostname` is normalized. Synchronous whenever the cache can answer. */
  resolve(hostname: string): HostRecord | null | Promise<HostRecord | null> {
    const entry = this.lru.get(hostname, GET_OPTIONS) ?? this.misses.get(hostname, GET_OPTIONS);
    if (entry !== undefined && !entry.invalid && entry.epoch === this.epoch) {
      const now = this.clock();
      entry.usedAt = now;
      if (now < entry.expiresAt) {
        if (entry.record === null) this.stats.negative++;
        else this.stats.hit++;
        return entry.record;
      }
      if (entry.record !== null) {
        this.stats.stale++;
        if (now >= entry.retryAt && !this.flights.has(hostname)) this.start(hostname);
        return entry.record;
      }
      // An expired negative entry is a plain miss.
    }
    let flight = this.flights.get(hostname);
    if (flight === undefined) flight = this.start(hostname);
    flight.waiters++;
    return flight.promise;
  }

  /**
   * The control plane changed `names` (hostnames or wildcards `*.rest`): their negative entries
   * go, their positive ones must be re-read before being served, lookups in flight for them
   * are overtaken. Positive ones used recently are re-read now (refresh-ahead), in one batch
   * with every other name invalidated in this event loop turn.
   */
  invalidate(names: readonly string[]): void {
    let wildcards: Set<string> | undefined;
    for (const name of names) {
      if (isWildcard(name)) {
        (wildcards ??= new Set()).add(name);
        const hosts = this.byWildcard.get(name);
        // Deleting the element being visited is safe for a Set iterator.
        if (hosts !== undefined) for (const hostname of hosts) this.invalidateHost(hostname);
      } else {
        this.invalidateHost(name);
      }
    }
    if (wildcards !== undefined) {
      for (const flight of this.flights.values()) {
        if (flight.wildcard !== null && wildcards.has(flight.wildcard)) this.detach(flight);
      }
    }
  }

  /**
   * Everything may have changed (resubscribe, lost message): O(1), every entry becomes
   * invalid at once, and every lookup in flight is overtaken.
   */
  flush(): void {
    this.epoch++;
    // Old flights compare their epoch before storing; a new map detaches them all at once.
    this.flights = new Map();
  }

  /** Stops the default clock's timer (unref'd: forgetting this never holds the process) and refresh-ahead. */
  close(): void {
    this.closed = true;
    this.pending = undefined;
    clearInterval(this.ticker);
    this.ticker = undefined;
  }

  /** Adds what was counted since the last call to the Prometheus counters. */
  publishMetrics(): void {
    const m = this.metrics;
    if (m === undefined) return;
    const s = this.stats;
    const p = this.published;
    if (s.hit > p.hit) m.cache.inc({ result: 'hit' }, s.hit - p.hit);
    if (s.negative > p.negative) m.cache.inc({ result: 'negative' }, s.negative - p.negative);
    if (s.stale > p.stale) m.cache.inc({ result: 'stale' }, s.stale - p.stale);
    if (s.miss > p.miss) m.cache.inc({ result: 'miss' }, s.miss - p.miss);
    if (s.found > p.found) m.redisLookups.inc({ outcome: 'found' }, s.found - p.found);
    if (s.notFound > p.notFound) m.redisLookups.inc({ outcome: 'not_found' }, s.notFound - p.notFound);
    if (s.errors > p.errors) m.redisLookups.inc({ outcome: 'error' }, s.errors - p.errors);
    if (s.refreshed > p.refreshed) m.refreshAhead.inc(s.refreshed - p.refreshed);
    Object.assign(p, s);
    m.cacheSize.set(this.lru.size);
  }

  private start(hostname: string): Flight {
    const flight = new Flight(hostname, wildcardFor(hostname), this.epoch);
    this.flights.set(hostname, flight);
    flight.promise = this.run(flight);
    // Background refreshes have no caller; their failure is handled here, not unhandled.
    flight.promise.catch(ignore);
    return flight;
  }

  private async run(flight: Flight): Promise<HostRecord | null> {
    let match: HostMatch | null;
    try {
      match = await this.source.find(flight.hostname);
    } catch (err) {
      return this.failed(flight, err);
    }
    return this.answered(flight, match);
  }

  /** One name of a refresh-ahead batch: `answers[i]` is its outcome. */
  private async runBatched(flight: Flight, answers: Promise<Array<HostMatch | null | Error>>, i: number): Promise<HostRecord | null> {
    let match: HostMatch | null;
    try {
      const answer = (await answers)[i];
      if (answer === undefined) throw new Error('batched lookup answered fewer names than asked');
      if (answer instanceof Error) throw answer;
      match = answer;
    } catch (err) {
      return this.failed(flight, err);
    }
    return this.answered(flight, match);
  }

  private failed(flight: Flight, err: unknown): HostRecord {
    this.settle(flight);
    this.stats.errors++;
    this.logLookupError(flight.hostname, err);
    const old = this.lru.peek(flight.hostname, PEEK_OPTIONS);
    if (old !== undefined && old.record !== null) {
      old.retryAt = this.clock() + this.errorRetryMs;
      this.stats.stale += flight.waiters;
      return old.record;
    }
    this.stats.miss += flight.waiters;
    throw new StoreUnavailableError(`routing store unavailable and ${flight.hostname} is not cached`, { cause: err });
  }

  private answered(flight: Flight, match: HostMatch | null): HostRecord | null {
    this.settle(flight);
    this.stats.miss += flight.waiters;
    if (match === null) this.stats.notFound++;
    else this.stats.found++;
    if (flight.detached || flight.epoch !== this.epoch) {
      this.stats.discarded++;
    } else {
      this.store(flight.hostname, match, flight.waiters > 0);
    }
    return match === null ? null : match.record;
  }

  /** `used`: a request waited for this answer; else the entry keeps the old one's last use. */
  private store(hostname: string, match: HostMatch | null, used: boolean): void {
    const now = this.clock();
    const old = this.lru.peek(hostname, PEEK_OPTIONS);
    // A background re-read whose entry was evicted meanwhile would push out a name in use.
    if (!used && old === undefined) return;
    const usedAt = used ? now : (old?.usedAt ?? -Infinity);
    const entry =
      match === null
        ? new Entry(null, wildcardFor(hostname), this.epoch, now + this.negativeTtlMs, usedAt)
        : new Entry(match.record, match.matched === hostname ? null : match.matched, this.epoch, now + this.ttlMs, usedAt);
    if (entry.record === null) {
      this.lru.delete(hostname);
      this.misses.set(hostname, entry);
    } else {
      this.misses.delete(hostname);
      this.lru.set(hostname, entry);
    }
  }

  private invalidateHost(hostname: string): void {
    this.misses.delete(hostname);
    const entry = this.lru.peek(hostname, PEEK_OPTIONS);
    if (entry !== undefined) {
      entry.invalid = true;
      entry.retryAt = 0;
      // A flushed entry is re-read on demand, like every other entry the flush reached.
      if (entry.epoch === this.epoch && this.clock() - entry.usedAt <= this.refreshAheadMs) this.refreshSoon(hostname);
    }
    const flight = this.flights.get(hostname);
    if (flight !== undefined) this.detach(flight);
  }

  /**
   * Batches the names of every invalidation of this turn: the microtask runs as soon as the
   * current callback returns — after every message of the same socket read, before the next
   * I/O callback — so the batch is whole and nothing waits for a timer or the next loop turn.
   */
  private refreshSoon(hostname: string): void {
    if (this.closed || this.refreshAheadMs <= 0) return;
    if (this.pending === undefined) {
      this.pending = new Set();
      queueMicrotask(this.refreshPending);
    }
    this.pending.add(hostname);
  }

  private readonly refreshPending = (): void => {
    const names = this.pending;
    this.pending = undefined;
    if (names === undefined || this.closed) return;
    let batch: string[] = [];
    let taken = 0;
    for (const hostname of names) {
      if (taken === REFRESH_MAX) break;
      const entry = this.lru.peek(hostname, PEEK_OPTIONS);
      // Gone, flushed, or already being re-read by a request that came after the invalidation.
      if (entry === undefined || !entry.invalid || entry.epoch !== this.epoch || this.flights.has(hostname)) continue;
      batch.push(hostname);
      taken++;
      if (batch.length === REFRESH_BATCH) {
        this.refresh(batch);
        batch = [];
      }
    }
    if (batch.length > 0) this.refresh(batch);
  };

  /** Starts one lookup per name (each a flight requests join), read in one round trip. */
  private refresh(hostnames: string[]): void {
    this.stats.refreshed += hostnames.length;
    const source = this.source;
    if (source.findMany === undefined) {
      for (const hostname of hostnames) this.start(hostname);
      return;
    }
    const flights = hostnames.map((hostname) => {
      const flight = new Flight(hostname, wildcardFor(hostname), this.epoch);
      this.flights.set(hostname, flight);
      return flight;
    });
    const answers = source.findMany(hostnames);
    for (let i = 0; i < flights.length; i++) {
      const flight = flights[i]!;
      flight.promise = this.runBatched(flight, answers, i);
      flight.promise.catch(ignore);
    }
  }

  private detach(flight: Flight): void {
    flight.detached = true;
    this.flights.delete(flight.hostname);
  }

  /** A finished lookup leaves the map unless it was already replaced by a newer one. */
  private settle(flight: Flight): void {
    if (this.flights.get(flight.hostname) === flight) this.flights.delete(flight.hostname);
  }

  private index(entry: Entry, hostname: string): void {
    if (entry.indexedUnder === null) return;
    let hosts = this.byWildcard.get(entry.indexedUnder);
    if (hosts === undefined) {
      hosts = new Set();
      this.byWildcard.set(entry.indexedUnder, hosts);
    }
    hosts.add(hostname);
  }

  private unindex(entry: Entry, hostname: string): void {
    if (entry.indexedUnder === null) return;
    const hosts = this.byWildcard.get(entry.indexedUnder);
    if (hosts === undefined) return;
    hosts.delete(hostname);
    if (hosts.size === 0) this.byWildcard.delete(entry.indexedUnder);
  }

  /** One line per interval: a Redis outage fails every miss, and the log must not flood. */
  private logLookupError(hostname: string, err: unknown): void {
    if (this.log === undefined) return;
    const now = this.clock();
    if (now - this.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) {
      this.suppressedErrors++;
      return;
    }
    this.log.warn(
      { hostname, err: err instanceof Error ? err.message : String(err), suppressed: this.suppressedErrors },
      'route lookup failed: serving cached routes, 503 for names not cached',
    );
    this.lastErrorLogAt = now;
    this.suppressedErrors = 0;
  }
}

/**
 * The router's RouteLookup: Redis records (HostStore) behind the in-process cache
 * (RouteCache), kept current by the invalidation channel (InvalidationSubscriber).
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { KeySchema } from '../../../proto/keys.js';
import type { HostRecord } from '../../../proto/records.js';
import type { RouterMetrics } from '../metrics.js';
import { HostStore } from './host-store.js';
import { InvalidationSubscriber, type SubscriberStatus } from './invalidation-subscriber.js';
import { RouteCache } from './route-cache.js';
import type { RouteLookup } from './route-lookup.js';

export interface RouteResolverOptions {
  /** Fail-fast connection (connectRedis with a command timeout) for lookups and the version. Not closed here. */
  redis: Redis;
  /** Dedicated subscriber connection, closed by its owner; default: a duplicate of `redis`, closed by close(). */
  subscriber?: Redis;
  keys: KeySchema;
  metrics: RouterMetrics;
  log: Logger;
  max: number;
  ttlMs: number;
  negativeTtlMs: number;
  pingIntervalMs?: number;
  clock?: () => number;
  onCerts?: (names: string[]) => void;
  onFlush?: () => void;
  /** How long start() waits for the first subscription before giving up (and serving anyway). Default 3 s. */
  startTimeoutMs?: number;
}

const DEFAULT_START_TIMEOUT_MS = 3000;
/** Cache counters reach Prometheus this often rather than per request (no hot-path labels). */
const METRICS_INTERVAL_MS = 1000;

export class RedisRouteResolver implements RouteLookup {
  readonly store: HostStore;
  readonly cache: RouteCache;
  readonly subscriber: InvalidationSubscriber;
  private readonly log: Logger;
  private readonly startTimeoutMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: RouteResolverOptions) {
    this.log = options.log;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.store = new HostStore(options.redis, options.keys);
    this.cache = new RouteCache(this.store, {
      max: options.max,
      ttlMs: options.ttlMs,
      negativeTtlMs: options.negativeTtlMs,
      metrics: options.metrics,
      log: options.log,
      clock: options.clock,
    });
    this.subscriber = new InvalidationSubscriber({
      redis: options.redis,
      keys: options.keys,
      cache: this.cache,
      metrics: options.metrics,
      log: options.log,
      subscriber: options.subscriber,
      pingIntervalMs: options.pingIntervalMs,
      clock: options.clock,
      onCerts: options.onCerts,
      onFlush: options.onFlush,
    });
  }

  /**
   * Subscribes. Resolves once in sync, or after `startTimeoutMs` with Redis unreachable: the
   * router must come up and answer (cached routes, else 503) rather than hang; the subscriber
   * keeps trying and /readyz tells the load balancer meanwhile.
   */
  async start(): Promise<void> {
    this.timer ??= setInterval(() => this.cache.publishMetrics(), METRICS_INTERVAL_MS).unref();
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.subscriber.start().then(() => false),
      new Promise<boolean>((resolve) => {
        timeout = setTimeout(() => resolve(true), this.startTimeoutMs);
      }),
    ]);
    clearTimeout(timeout);
    if (timedOut) this.log.warn({ waitedMs: this.startTimeoutMs }, 'not subscribed to invalidations yet: starting anyway, not ready');
  }

  resolve(hostname: string): HostRecord | null | Promise<HostRecord | null> {
    return this.cache.resolve(hostname);
  }

  ready(maxStalenessMs: number): boolean {
    return this.subscriber.ready(maxStalenessMs);
  }

  status(): SubscriberStatus & { cacheSize: number } {
    return { ...this.subscriber.status(), cacheSize: this.cache.size };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.subscriber.close();
    this.cache.close();
    this.cache.publishMetrics();
  }
}

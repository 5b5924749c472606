/**
 * The router's side of the invalidation protocol (docs/ARCHITECTURE.md): a dedicated
 * subscriber connection on `<prefix>invalidations` that keeps the route cache current.
 *
 * - Every (re)subscription flushes the cache and reads `<prefix>version` (on the normal
 *   connection: a RESP2 subscriber cannot GET): writes made while not subscribed were never
 *   delivered. Subscribing is ours on every 'ready', whether or not ioredis already
 *   resubscribed by itself, so the flush follows a subscription Redis has confirmed.
 * - Each message is applied, ignored or turned into a flush by `classifyVersion`.
 * - A PING every `pingIntervalMs` proves the connection alive when nothing changes; a
 *   connection silent for too long is re-established (a half-open TCP connection would
 *   otherwise look subscribed forever while delivering nothing).
 *
 * Nothing here may throw into ioredis: it rethrows listener errors on the next tick, which
 * would crash the router. A Redis outage is a state, logged and exported, never an exception.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { classifyVersion, decodeInvalidation, type Invalidation } from '../../../proto/invalidation.js';
import type { KeySchema } from '../../../proto/keys.js';
import type { RouterMetrics } from '../metrics.js';

/** What the subscriber drives: the route cache. */
export interface Invalidatable {
  invalidate(names: readonly string[]): void;
  flush(): void;
}

export interface InvalidationSubscriberOptions {
  /** A normal (non-subscriber) connection, for GET `<prefix>version`. Not closed here. */
  redis: Redis;
  /**
   * The dedicated subscriber connection; its owner closes it. Default: `redis.duplicate()`,
   * owned and closed by `close()`.
   */
  subscriber?: Redis;
  keys: KeySchema;
  cache: Invalidatable;
  metrics?: RouterMetrics;
  log: Logger;
  /** Default 1000. */
  pingIntervalMs?: number;
  /** Silence (no message, no pong) after which the connection is dropped and re-made. Default max(5 pings, 5 s). */
  reconnectAfterSilenceMs?: number;
  /** Milliseconds, monotonic. */
  clock?: () => number;
  /** Certificate domains whose `cert:` records changed (the TLS layer drops them). */
  onCerts?: (names: string[]) => void;
  /** Called after every flush of the route cache (the TLS layer flushes too). */
  onFlush?: () => void;
}

export interface SubscriberStatus {
  /** Subscription confirmed and the version it started from read. */
  subscribed: boolean;
  lastVersion: number;
  /** Since the last message or ping reply. */
  silenceMs: number;
}

const DEFAULT_PING_INTERVAL_MS = 1000;
const RESUBSCRIBE_RETRY_MS = 1000;
const VERSION_RETRY_MIN_MS = 100;
const VERSION_RETRY_MAX_MS = 2000;
const ERROR_LOG_INTERVAL_MS = 10_000;

const defaultClock = (): number => performance.now();
const ignore = (): void => undefined;

export class InvalidationSubscriber {
  private readonly sub: Redis;
  private readonly ownsConnection: boolean;
  private readonly redis: Redis;
  private readonly keys: KeySchema;
  private readonly cache: Invalidatable;
  private readonly metrics: RouterMetrics | undefined;
  private readonly log: Logger;
  private readonly pingIntervalMs: number;
  private readonly reconnectAfterSilenceMs: number;
  private readonly clock: () => number;
  private readonly onCerts: ((names: string[]) => void) | undefined;
  private readonly onFlush: (() => void) | undefined;

  /** Bumped by every disconnect: work started for an older connection must not finish. */
  private session = 0;
  /** The session a SUBSCRIBE was issued for (one per connection, however many 'ready's). */
  private subscribeSession = -1;
  private subscribed = false;
  /** Subscribed, version not read yet: every message is applied, whatever its version. */
  private syncing = false;
  private highestWhileSyncing = 0;
  private lastVersion = 0;
  private lastHeardAt: number;
  private pingInFlight = false;
  private started = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private lastErrorLogAt = -Infinity;
  private readonly firstSync: Promise<void>;
  private firstSyncDone: () => void = ignore;

  constructor(options: InvalidationSubscriberOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    this.cache = options.cache;
    this.metrics = options.metrics;
    this.log = options.log;
    this.pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.reconnectAfterSilenceMs = options.reconnectAfterSilenceMs ?? Math.max(5 * this.pingIntervalMs, 5000);
    this.clock = options.clock ?? defaultClock;
    this.onCerts = options.onCerts;
    this.onFlush = options.onFlush;
    this.ownsConnection = options.subscriber === undefined;
    this.sub =
      options.subscriber ??
      options.redis.duplicate({ connectionName: `${options.redis.options.connectionName ?? 'router'}-invalidations` });
    // From the start: an owned connection is already connecting, and an 'error' without a
    // listener is printed by ioredis as unhandled.
    this.sub.on('error', this.onError);
    this.lastHeardAt = this.clock();
    this.firstSync = new Promise((resolve) => {
      this.firstSyncDone = resolve;
    });
  }

  /** Resolves once subscribed and in sync (never rejects; Redis may be down for a while). */
  start(): Promise<void> {
    if (this.started || this.closed) return this.firstSync;
    this.started = true;
    this.metrics?.subscriberUp.set(0);
    this.sub.on('ready', this.onReady);
    this.sub.on('close', this.onDown);
    this.sub.on('end', this.onDown);
    this.sub.on('message', this.onMessage);
    this.timer = setInterval(this.tick, this.pingIntervalMs);
    this.timer.unref();
    if (this.sub.status === 'ready') void this.subscribe();
    else if (this.sub.status === 'wait') this.sub.connect().catch(ignore);
    return this.firstSync;
  }

  status(): SubscriberStatus {
    return { subscribed: this.subscribed, lastVersion: this.lastVersion, silenceMs: this.silenceMs() };
  }

  ready(maxStalenessMs: number): boolean {
    return this.subscribed && this.silenceMs() <= maxStalenessMs;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.session++;
    clearInterval(this.timer);
    this.sub.off('ready', this.onReady);
    this.sub.off('close', this.onDown);
    this.sub.off('end', this.onDown);
    this.sub.off('message', this.onMessage);
    this.subscribed = false;
    this.metrics?.subscriberUp.set(0);
    this.firstSyncDone();
    if (this.ownsConnection) {
      // Our error listener stays: a late error of the dying connection is not "unhandled".
      this.sub.disconnect();
      return;
    }
    this.sub.off('error', this.onError);
    // Not awaited: a hung Redis must not hang the router's shutdown.
    if (this.sub.status === 'ready') this.sub.unsubscribe(this.keys.invalidationChannel).catch(ignore);
  }

  private silenceMs(): number {
    return Math.max(0, Math.round(this.clock() - this.lastHeardAt));
  }

  private readonly onReady = (): void => {
    void this.subscribe();
  };

  private readonly onDown = (): void => {
    this.session++;
    this.pingInFlight = false;
    if (this.subscribed || this.syncing) {
      this.log.warn('invalidation subscriber disconnected: serving cached routes until it resubscribes');
    }
    this.subscribed = false;
    this.syncing = false;
    this.metrics?.subscriberUp.set(0);
  };

  private readonly onError = (err: Error): void => {
    this.logThrottled(err, 'invalidation subscriber connection error');
  };

  private async subscribe(): Promise<void> {
    const session = this.session;
    if (this.closed || this.subscribeSession === session) return;
    this.subscribeSession = session;
    try {
      await this.sub.subscribe(this.keys.invalidationChannel);
    } catch (err) {
      if (this.closed || session !== this.session) return;
      this.logThrottled(err, 'SUBSCRIBE failed; retrying');
      setTimeout(() => {
        if (this.closed || session !== this.session) return;
        this.subscribeSession = -1;
        void this.subscribe();
      }, RESUBSCRIBE_RETRY_MS).unref();
      return;
    }
    if (this.closed || session !== this.session) return;
    this.lastHeardAt = this.clock();
    this.syncing = true;
    this.highestWhileSyncing = 0;
    this.metrics?.invalidations.inc({ result: 'flush' });
    this.flush();
    await this.syncVersion(session);
  }

  private async syncVersion(session: number): Promise<void> {
    let delay = VERSION_RETRY_MIN_MS;
    for (;;) {
      let raw: string | null;
      try {
        raw = await this.redis.get(this.keys.versionKey);
      } catch (err) {
        if (this.closed || session !== this.session) return;
        this.logThrottled(err, `GET ${this.keys.versionKey} failed; retrying`);
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
        if (this.closed || session !== this.session) return;
        delay = Math.min(delay * 2, VERSION_RETRY_MAX_MS);
        continue;
      }
      if (this.closed || session !== this.session) return;
      const version = Number(raw ?? 0);
      // Writes up to `version` were made before this read; their messages travel on the other
      // connection and, arriving after it, would now be ignored as old: flush once more.
      this.flush();
      this.lastVersion = Math.max(Number.isSafeInteger(version) ? version : 0, this.highestWhileSyncing);
      this.syncing = false;
      this.subscribed = true;
      this.metrics?.subscriberUp.set(1);
      this.metrics?.configVersion.set(this.lastVersion);
      this.log.info({ version: this.lastVersion }, 'invalidation subscriber in sync');
      this.firstSyncDone();
      return;
    }
  }

  private readonly onMessage = (channel: string, raw: string): void => {
    if (channel !== this.keys.invalidationChannel) return;
    this.lastHeardAt = this.clock();
    try {
      this.handle(raw);
    } catch (err) {
      // A bug here must not cost the process; what the message named is unknown now.
      this.log.error({ err }, 'invalidation handler failed; flushing the route cache');
      this.safeFlush();
    }
  };

  private handle(raw: string): void {
    let msg: Invalidation;
    try {
      msg = decodeInvalidation(raw);
      if (!isStringArray(msg.hosts) || !isStringArray(msg.certs) || !Number.isSafeInteger(msg.version)) {
        throw new Error('invalidation hosts, certs or version malformed');
      }
    } catch (err) {
      // It may have named something: everything is suspect.
      this.metrics?.invalidations.inc({ result: 'malformed' });
      this.log.warn({ err: errorMessage(err), message: raw.slice(0, 200) }, 'unreadable invalidation message; flushing the route cache');
      this.flush();
      return;
    }
    if (!this.subscribed) {
      // Syncing: `last` is not known yet, so apply everything; the version read settles it.
      this.highestWhileSyncing = Math.max(this.highestWhileSyncing, msg.version);
      this.apply(msg);
      this.metrics?.invalidations.inc({ result: 'applied' });
      return;
    }
    switch (classifyVersion(this.lastVersion, msg.version)) {
      case 'apply':
        this.apply(msg);
        this.lastVersion = msg.version;
        this.metrics?.invalidations.inc({ result: 'applied' });
        break;
      case 'ignore':
        this.metrics?.invalidations.inc({ result: 'ignored' });
        return;
      case 'flush':
        this.log.warn({ last: this.lastVersion, version: msg.version }, 'invalidation messages lost; flushing the route cache');
        this.flush();
        this.lastVersion = msg.version;
        this.metrics?.invalidations.inc({ result: 'flush' });
        break;
    }
    this.metrics?.configVersion.set(this.lastVersion);
  }

  private apply(msg: Invalidation): void {
    if (msg.hosts.length > 0) this.cache.invalidate(msg.hosts);
    if (msg.certs.length > 0 && this.onCerts !== undefined) {
      try {
        this.onCerts(msg.certs);
      } catch (err) {
        this.log.error({ err }, 'onCerts callback failed');
      }
    }
  }

  private flush(): void {
    this.cache.flush();
    if (this.onFlush === undefined) return;
    try {
      this.onFlush();
    } catch (err) {
      this.log.error({ err }, 'onFlush callback failed');
    }
  }

  private safeFlush(): void {
    try {
      this.flush();
    } catch {
      // nothing left to try
    }
  }

  private readonly tick = (): void => {
    const silence = this.silenceMs();
    this.metrics?.secondsSinceMessage.set(silence / 1000);
    if (this.closed || this.sub.status !== 'ready') return;
    if (this.subscribed && silence > this.reconnectAfterSilenceMs) {
      this.log.warn({ silenceMs: silence }, 'invalidation subscriber silent; reconnecting');
      this.sub.disconnect(true);
      return;
    }
    if (this.pingInFlight) return;
    this.pingInFlight = true;
    const session = this.session;
    this.sub.ping().then(
      () => {
        if (session !== this.session) return;
        this.pingInFlight = false;
        this.lastHeardAt = this.clock();
      },
      (err: unknown) => {
        if (session !== this.session) return;
        this.pingInFlight = false;
        this.logThrottled(err, 'subscriber PING failed');
      },
    );
  };

  private logThrottled(err: unknown, msg: string): void {
    const now = this.clock();
    if (now - this.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLogAt = now;
    this.log.warn({ err: errorMessage(err) }, msg);
  }
}

function isStringArray(value: unknown[]): value is string[] {
  for (const item of value) if (typeof item !== 'string') return false;
  return true;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

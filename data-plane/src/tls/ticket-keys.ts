/**
 * The HTTPS listener's session ticket key, shared by every worker of every router so that a
 * client whose next connection lands elsewhere (round-robin accept, another router behind
 * the load balancer) resumes its session instead of paying a full handshake.
 *
 * Why one key per time window, switched by everyone at the same instant: node:tls holds
 * exactly one 48-byte ticket key (`server.setTicketKeys`; it refuses anything else) and a
 * ticket whose key name does not match is simply not resumed — there is no "previous key
 * still accepted" slot. Windows are multiples of TLS_TICKET_KEY_ROTATE since the Unix
 * epoch, so every process computes the same boundaries from its own clock with no
 * coordinator; the key of window e is agreed through Redis (ticket-key-store.ts). The cost
 * of a switch is one full handshake per client, once per period (12 h by default). Routers
 * or workers switching a few milliseconds apart (clock skew, timer jitter) only cost the
 * clients that connect in between the same single full handshake: a ticket is either
 * resumed or ignored, never an error.
 *
 * Each worker reads Redis itself, the cluster primary is not involved (Node's own copy of
 * the first worker's key at listen() covers neither rotation nor a replaced worker: see
 * reapply). It prefetches the next window's key a little before the boundary, switches
 * exactly at it, and re-reads the current key whenever the connection becomes ready again
 * (a Redis that lost its data gets this router's key offered back, so the fleet converges
 * again). Without
 * KEY_ENCRYPTION_KEY, or while Redis does not answer, the key is a process-local random one
 * (sessions resume only on this worker), still changed at every boundary, and Redis is
 * retried in the background with a growing delay.
 *
 * The key is never logged; messages carry epochs and error reasons only.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { TICKET_KEY_BYTES, TicketKeyError } from '../../../proto/ticket-key.js';
import type { RouterMetrics } from '../metrics.js';
import type { TicketKeyStore } from './ticket-key-store.js';

export interface TicketKeysOptions {
  /** Undefined without KEY_ENCRYPTION_KEY: process-local keys only. */
  store: TicketKeyStore | undefined;
  /** The store's connection: each 'ready' (every reconnect) re-checks the current key. */
  redis: Redis;
  periodMs: number;
  metrics: RouterMetrics;
  log: Logger;
  /** Installs a key on the TLS server (`server.setTicketKeys`). */
  apply: (key: Buffer) => void;
  /** Milliseconds since the Unix epoch; default Date.now. */
  clock?: () => number;
  /** How long start() waits for the connection before starting on a local key. Default 1 s. */
  startTimeoutMs?: number;
}

export interface TicketKeyStatus {
  epoch: number;
  /** True when the key in use came from Redis (the fleet's), false for a process-local one. */
  shared: boolean;
}

interface Held extends TicketKeyStatus {
  key: Buffer;
}

const MIN_RETRY_MS = 250;
const MAX_RETRY_MS = 30_000;
const MAX_LEAD_MS = 60_000;

export class TicketKeys {
  private readonly store: TicketKeyStore | undefined;
  private readonly redis: Redis;
  private readonly periodMs: number;
  private readonly leadMs: number;
  private readonly metrics: RouterMetrics;
  private readonly log: Logger;
  private readonly apply: (key: Buffer) => void;
  private readonly clock: () => number;
  private readonly startTimeoutMs: number;

  private current: Held | null = null;
  /** The next window's shared key, fetched ahead of the boundary. */
  private next: Held | null = null;
  /** Re-read the current window's key (set on every reconnect). */
  private verify = false;
  private retryAt = 0;
  private retryMs = MIN_RETRY_MS;
  private failing = false;
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: TicketKeysOptions) {
    this.store = options.store;
    this.redis = options.redis;
    this.periodMs = options.periodMs;
    this.leadMs = Math.min(MAX_LEAD_MS, Math.floor(options.periodMs / 4));
    this.metrics = options.metrics;
    this.log = options.log;
    this.apply = options.apply;
    this.clock = options.clock ?? Date.now;
    this.startTimeoutMs = options.startTimeoutMs ?? 1000;
  }

  status(): TicketKeyStatus {
    return { epoch: this.current?.epoch ?? -1, shared: this.current?.shared ?? false };
  }

  /** Installs the current window's key (shared if Redis answers in time, else local) and schedules the switches. */
  async start(): Promise<void> {
    if (this.store === undefined) {
      this.log.warn('KEY_ENCRYPTION_KEY is not set: TLS session ticket keys are process-local, so sessions resume only on the worker that issued them');
    } else {
      this.redis.on('ready', this.onReady);
      await waitReady(this.redis, this.startTimeoutMs);
    }
    await this.run();
  }

  /**
   * Installs the current key again. Under node:cluster, a worker's listen() replaces its
   * ticket key with the one the first worker had when it listened (Node shares it through the
   * primary's handle, lib/_tls_wrap.js `_setServerData`, once, undocumented): by the time a
   * worker is replaced that key may belong to a past window. router.ts calls this after listen.
   */
  reapply(): void {
    if (this.current !== null) this.apply(this.current.key);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.redis.off('ready', this.onReady);
  }

  private readonly onReady = (): void => {
    this.verify = true;
    this.retryAt = 0;
    this.retryMs = MIN_RETRY_MS;
    void this.run();
  };

  private epochAt(now: number): number {
    return Math.floor(now / this.periodMs);
  }

  /** One pass at a time; a request arriving meanwhile runs another pass after it. */
  private run(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.step();
      } while (this.again && !this.closed);
    })().finally(() => {
      this.running = null;
      this.schedule();
    });
    return this.running;
  }

  private async step(): Promise<void> {
    const now = this.clock();
    const epoch = this.epochAt(now);
    if (this.current?.epoch !== epoch) this.switchTo(epoch);
    const current = this.current!;
    if (this.store === undefined || now < this.retryAt) return;
    if (!current.shared || this.verify) {
      this.verify = false;
      // Offer the key in use: after a Redis data loss, routers still holding the old shared
      // key converge on it again instead of splitting.
      const key = await this.fetch(epoch, current.key);
      if (key === null) {
        this.verify = current.shared;
        return;
      }
      // The window may have ended while Redis answered: the next pass switches instead.
      if (this.current?.epoch === epoch) this.install({ epoch, key, shared: true });
    } else if (now >= (epoch + 1) * this.periodMs - this.leadMs && this.next?.epoch !== epoch + 1) {
      const key = await this.fetch(epoch + 1, randomBytes(TICKET_KEY_BYTES));
      if (key !== null) this.next = { epoch: epoch + 1, key, shared: true };
    }
  }

  private switchTo(epoch: number): void {
    const next = this.next?.epoch === epoch ? this.next : null;
    this.next = null;
    this.install(next ?? { epoch, key: randomBytes(TICKET_KEY_BYTES), shared: false });
  }

  private install(held: Held): void {
    const before = this.current;
    this.current = held;
    if (before === null || before.epoch !== held.epoch || !before.key.equals(held.key)) this.apply(held.key);
    this.metrics.tlsTicketKeyEpoch.set(held.epoch);
    this.metrics.tlsTicketKeyShared.set(held.shared ? 1 : 0);
    // A local key at start is replaced by the shared one a moment later: not worth a line.
    if (before === null && !held.shared && this.store !== undefined) return;
    if (before === null || before.epoch !== held.epoch || before.shared !== held.shared) {
      this.log.info({ epoch: held.epoch, shared: held.shared }, held.shared ? 'TLS session ticket key: the shared one' : 'TLS session ticket key: a process-local one');
    }
  }

  private async fetch(epoch: number, candidate: Buffer): Promise<Buffer | null> {
    try {
      const key = await this.store!.obtain(epoch, candidate);
      if (this.failing) this.log.info({ epoch }, 'shared TLS session ticket key readable again');
      this.failing = false;
      this.retryAt = 0;
      this.retryMs = MIN_RETRY_MS;
      return key;
    } catch (err) {
      // Closing disconnects Redis under a pass in flight: not a failure worth a line.
      if (this.closed) return null;
      this.metrics.tlsTicketKeyFailures.inc();
      const reason = (err as Error).message;
      if (!this.failing) {
        // Once per streak: a Redis outage would otherwise log at every retry.
        const fields = { epoch, err: reason, retryMs: this.retryMs };
        const msg = 'cannot read or create the shared TLS session ticket key; retrying in the background (sessions resume only on this worker while a local key is in use)';
        if (err instanceof TicketKeyError) this.log.error(fields, msg);
        else this.log.warn(fields, msg);
      } else {
        this.log.debug({ epoch, err: reason }, 'shared TLS session ticket key still unavailable');
      }
      this.failing = true;
      this.retryAt = this.clock() + this.retryMs;
      this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
      return null;
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const now = this.clock();
    const epoch = this.epochAt(now);
    const boundary = (epoch + 1) * this.periodMs;
    let at = boundary;
    if (this.store !== undefined && this.current !== null) {
      const due = !this.current.shared || this.verify ? now : this.next?.epoch === epoch + 1 ? Infinity : boundary - this.leadMs;
      if (due < boundary) at = Math.min(boundary, Math.max(due, this.retryAt));
    }
    // Timers may fire a millisecond early by the wall clock: the pass then finds the same
    // window and schedules again for the remainder.
    this.timer = setTimeout(() => void this.run(), Math.max(0, at - now));
    this.timer.unref();
  }
}

function waitReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      redis.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    redis.on('ready', done);
  });
}

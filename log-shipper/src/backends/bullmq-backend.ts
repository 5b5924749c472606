/**
 * The BullMQ backend: access-log lines become jobs on ONE BullMQ queue that the platform's
 * consumers (billing, search, customers' log drains...) process with ordinary BullMQ Workers.
 *
 * Why one job per app per batch: at 2000 batches/s of ~300 lines, a job per line would be
 * 600k jobs/s — each a hash, a list entry and an event in Redis. A job per app per batch is
 * a few jobs per batch, all added with ONE `addBulk` (one pipelined round trip).
 *
 * The job (the contract with consumers):
 *   queue   LOG_QUEUE_NAME (default `router-logs`), BullMQ `prefix` = REDIS_PREFIX + "bull",
 *           so its keys are `<REDIS_PREFIX>bull:<queue>:…` (`rt:bull:router-logs:wait`): inside
 *           the platform's prefix, apart from the routing records. A consumer opens it with
 *           `new Worker(queue, fn, { prefix: bullmqPrefix(REDIS_PREFIX), connection })`.
 *   name    `access-log` (a future format would get another name, so consumers can tell).
 *   data    `{ app, lines, count }`: `app` is the app name, or `-` for requests that never
 *           resolved to an app; `lines` is NDJSON (one access-log object per line, each
 *           ending in '\n', in the order the router wrote them); `count` is the number of
 *           lines.
 * Guarantees: at-least-once. `write` resolves once Redis acknowledged every job of the
 * batch; otherwise it rejects and the router sends the batch again, so a batch that Redis
 * half took (the pipeline is not a transaction), or took just before a timeout, is queued
 * twice. Jobs enter the queue in the order batches are written; a consumer that needs the
 * lines of an app in order processes with concurrency 1 (or orders by the lines' `at`).
 */
import type { Logger } from 'pino';
import { Queue, type DefaultJobOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { connectRedis, type StoreAddress } from '../../../proto/redis-connection.js';
import type { AppLines, LogBackend } from './backend.js';
import { registerBullmqMetrics, type BullmqFailureReason, type BullmqMetrics } from './bullmq-metrics.js';

export const LOG_JOB_NAME = 'access-log';

export interface LogJobData {
  app: string;
  lines: string;
  count: number;
}

export interface BullmqBackendConfig extends StoreAddress {
  redisPrefix: string;
  queueName: string;
}

export interface BullmqBackend extends LogBackend {
  /** True while the queue is open on a live connection (for /readyz). */
  ready(): boolean;
}

export const BULLMQ_ERRORS = {
  BULLMQ_UNAVAILABLE: 'The queue\'s Redis connection is down (or the backend is closed): nothing was sent; the batch is acked UNAVAILABLE and resent.',
  BULLMQ_ADD_FAILED: 'Redis refused the jobs or did not answer within the command timeout: some may have been queued; the batch is resent (at-least-once).',
  BULLMQ_BAD_QUEUE_NAME: 'LOG_QUEUE_NAME must be 1-100 characters of A-Z a-z 0-9 _ . - (BullMQ forbids ":").',
} as const;
export type BullmqErrorCode = keyof typeof BULLMQ_ERRORS;

export class BullmqBackendError extends Error {
  override readonly name = 'BullmqBackendError';
  constructor(
    readonly code: BullmqErrorCode,
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** BullMQ joins `<prefix>:<queue>:<key>`; the platform's prefix already ends as it likes. */
export function bullmqPrefix(redisPrefix: string): string {
  return `${redisPrefix}bull`;
}

export function isValidQueueName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,100}$/.test(name);
}

/**
 * Finished jobs are bounded so Redis does not grow once consumers keep up. A job is at most
 * a 64 KB batch (plus JSON escaping). Completed ones are only kept to look at recent
 * traffic: 100 (≤ ~8 MB). Failed ones are lines a consumer could not take: kept a week for
 * someone to inspect or retry, at most 1000 (≤ ~80 MB). Attempts with backoff (~15 s in
 * all) keep a consumer's brief hiccup from failing lines at all.
 */
const JOB_OPTIONS: DefaultJobOptions = {
  removeOnComplete: { count: 100 },
  removeOnFail: { age: 7 * 24 * 3600, count: 1000 },
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
};

/** Bounds a write when Redis hangs without closing the connection (the fail-fast rule of proto/redis-connection.ts). */
const COMMAND_TIMEOUT_MS = 1000;
/** How long creation waits for Redis before returning a backend that is not ready yet. */
const STARTUP_WAIT_MS = 2000;
/** Retry opening the queue after a failure while the connection stayed up (no 'ready' to wait for). */
const REOPEN_DELAY_MS = 1000;
/** During an outage every batch fails: log one line per this interval, with a count. */
const FAILURE_LOG_INTERVAL_MS = 5000;

class BullmqQueueBackend implements BullmqBackend {
  readonly name = 'bullmq';
  private queue: Queue<LogJobData, void, typeof LOG_JOB_NAME> | undefined;
  private opening: Promise<void> | undefined;
  private reopenTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private connected = false;
  private failuresUnlogged = 0;
  private lastFailureLog = -Infinity;
  private readonly redis: Redis;
  private markOpen!: () => void;
  private readonly firstOpen = new Promise<void>((resolve) => {
    this.markOpen = resolve;
  });

  constructor(
    private readonly config: BullmqBackendConfig,
    private readonly log: Logger,
    private readonly metrics: BullmqMetrics,
  ) {
    // A Queue (producer) never blocks, so unlike a Worker it needs no maxRetriesPerRequest:
    // null; the shared connection keeps no offline queue, so a write while Redis is down
    // fails at once instead of waiting for a reconnection.
    this.redis = connectRedis(config, { connectionName: 'log-shipper-bullmq', commandTimeoutMs: COMMAND_TIMEOUT_MS });
    this.redis.on('ready', () => {
      if (!this.connected) this.log.info({ queue: config.queueName }, 'log queue: Redis connected');
      this.connected = true;
      this.open();
    });
    this.redis.on('error', (err: Error) => this.connectionLost(err));
    this.redis.on('close', () => this.connectionLost(undefined));
    if (this.redis.status === 'ready') this.open();
  }

  /** Resolves when the queue is open, or after `ms`, whichever comes first. */
  async started(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    });
    await Promise.race([this.firstOpen, deadline]);
    clearTimeout(timer);
    if (!this.ready()) this.log.warn({ queue: this.config.queueName }, 'log queue: Redis not reachable yet; batches are refused until it is');
  }

  ready(): boolean {
    return !this.closed && this.queue !== undefined && this.redis.status === 'ready';
  }

  async write(batch: readonly AppLines[]): Promise<void> {
    const queue = this.queue;
    if (queue === undefined || this.redis.status !== 'ready') {
      const err = new BullmqBackendError('BULLMQ_UNAVAILABLE', this.closed ? 'the log queue is closed' : 'the log queue\'s Redis connection is down');
      this.failed('unavailable', err);
      throw err;
    }
    const jobs: Array<{ name: typeof LOG_JOB_NAME; data: LogJobData }> = [];
    let lines = 0;
    for (const section of batch) {
      if (section.data.length === 0) continue;
      jobs.push({ name: LOG_JOB_NAME, data: { app: section.app, lines: section.data.toString('utf8'), count: section.lines } });
      lines += section.lines;
    }
    if (jobs.length === 0) return;

    const stop = this.metrics.addSeconds.startTimer();
    try {
      await queue.addBulk(jobs);
    } catch (cause) {
      const err = new BullmqBackendError('BULLMQ_ADD_FAILED', `adding ${jobs.length} jobs failed: ${(cause as Error).message}`, { cause });
      this.failed('error', err);
      throw err;
    } finally {
      stop();
    }
    this.metrics.jobsAdded.inc(jobs.length);
    this.metrics.linesAdded.inc(lines);
  }

  /** Nothing to reopen: SIGHUP is for files. */
  async reopen(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reopenTimer);
    await this.opening;
    const queue = this.queue;
    this.queue = undefined;
    // The connection is ours, not the queue's: closing the queue leaves it open.
    await queue?.close().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'log queue: close failed'));
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /**
   * The queue is created on a live connection and kept across reconnections. Its start
   * (a version check) can still fail if Redis drops at that moment, and BullMQ never
   * retries it: such a queue is discarded and a new one opened.
   */
  private open(): void {
    if (this.closed || this.queue !== undefined || this.opening !== undefined) return;
    const queue = new Queue<LogJobData, void, typeof LOG_JOB_NAME>(this.config.queueName, {
      connection: this.redis,
      prefix: bullmqPrefix(this.config.redisPrefix),
      defaultJobOptions: JOB_OPTIONS,
    });
    // Without a listener an 'error' event would throw; connection errors are already
    // reported by the connection's own listener.
    queue.on('error', (err: Error) => {
      if (this.redis.status === 'ready') this.log.error({ err: err.message }, 'log queue error');
    });
    this.opening = queue.waitUntilReady().then(
      async () => {
        if (this.closed) await queue.close().catch(() => undefined);
        else {
          this.queue = queue;
          this.markOpen();
        }
      },
      async (err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'log queue: could not open; retrying');
        await queue.close().catch(() => undefined);
        if (!this.closed) {
          this.reopenTimer = setTimeout(() => this.open(), REOPEN_DELAY_MS);
          this.reopenTimer.unref();
        }
      },
    ).finally(() => {
      this.opening = undefined;
    });
  }

  private connectionLost(err: Error | undefined): void {
    if (!this.connected) return;
    this.connected = false;
    if (!this.closed) this.log.warn({ err: err?.message, queue: this.config.queueName }, 'log queue: Redis connection lost; batches are refused until it is back');
  }

  private failed(reason: BullmqFailureReason, err: BullmqBackendError): void {
    this.metrics.addFailures.inc({ reason });
    this.failuresUnlogged += 1;
    const now = performance.now();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS) return;
    this.log.warn({ code: err.code, err: err.message, failures: this.failuresUnlogged }, 'log queue: batches refused');
    this.lastFailureLog = now;
    this.failuresUnlogged = 0;
  }
}

/**
 * A BullMQ backend on its own Redis connection. Resolves once the queue is open, or after
 * STARTUP_WAIT_MS with a backend that is not ready yet (it opens the queue when Redis comes).
 * Throws BullmqBackendError BULLMQ_BAD_QUEUE_NAME for a queue name BullMQ cannot use.
 */
export async function createBullmqBackend(config: BullmqBackendConfig, log: Logger, metrics?: BullmqMetrics): Promise<BullmqBackend> {
  if (!isValidQueueName(config.queueName)) {
    throw new BullmqBackendError('BULLMQ_BAD_QUEUE_NAME', `invalid queue name ${JSON.stringify(config.queueName.slice(0, 100))}: ${BULLMQ_ERRORS.BULLMQ_BAD_QUEUE_NAME}`);
  }
  const backend = new BullmqQueueBackend(config, log, metrics ?? registerBullmqMetrics(new Registry()));
  await backend.started(STARTUP_WAIT_MS);
  return backend;
}

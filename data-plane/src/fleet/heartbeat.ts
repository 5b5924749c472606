/**
 * This router worker's line in the fleet view (proto/fleet.ts): every interval it writes its
 * heartbeat record with a TTL, scores its id in the `routers` zset, and reads the current
 * config version to publish its own lag as a metric — the one number that says whether
 * this router serves what the control plane last wrote. A failed beat is only logged: the
 * record expires by itself if the router cannot reach Redis.
 */
import os from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { codeVersion } from '../../../proto/build-info.js';
import { encodeHeartbeat, HEARTBEAT_TTL_FACTOR, routerId, type RouterHeartbeat } from '../../../proto/fleet.js';
import type { KeySchema } from '../../../proto/keys.js';
import type { RouterMetrics } from '../metrics.js';

export interface HeartbeatSource {
  /** From the invalidation subscriber. */
  status(): { subscribed: boolean; lastVersion: number; silenceMs: number };
  stats(): { inflight: number; websockets: number };
}

export interface HeartbeatOptions {
  redis: Redis;
  keys: KeySchema;
  source: HeartbeatSource;
  metrics: RouterMetrics;
  log: Logger;
  intervalMs: number;
  worker: number;
}

let instances = 0;

export class Heartbeat {
  readonly id: string;
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(private readonly options: HeartbeatOptions) {
    this.id = routerId(os.hostname(), process.pid, ++instances);
  }

  start(): void {
    void this.beat();
    this.timer = setInterval(() => void this.beat(), this.options.intervalMs);
    this.timer.unref();
  }

  /** One beat; resolves whether or not Redis took it. */
  async beat(): Promise<void> {
    const { redis, keys, source, metrics, intervalMs, worker } = this.options;
    const status = source.status();
    const stats = source.stats();
    const now = Date.now();
    const record: RouterHeartbeat = {
      v: 1,
      id: this.id,
      host: os.hostname(),
      pid: process.pid,
      worker,
      code_version: codeVersion(),
      config_version: status.lastVersion,
      seconds_since_message: Math.round(status.silenceMs / 100) / 10,
      subscribed: status.subscribed,
      inflight: stats.inflight,
      websockets: stats.websockets,
      started_at: this.startedAt,
      at: now,
      interval_ms: intervalMs,
    };
    try {
      const results = await redis
        .multi()
        .set(keys.router(this.id), encodeHeartbeat(record), 'PX', intervalMs * HEARTBEAT_TTL_FACTOR)
        .zadd(keys.routersIndexKey, now, this.id)
        .get(keys.versionKey)
        .exec();
      const current = Number(results?.[2]?.[1] ?? 0);
      if (Number.isSafeInteger(current) && status.lastVersion > 0) metrics.configVersionLag.set(Math.max(0, current - status.lastVersion));
      if (this.failures > 0) this.options.log.info({ failures: this.failures }, 'fleet heartbeat written again');
      this.failures = 0;
    } catch (err) {
      // Logged once per outage; the record expires by itself and the fleet view shows the router gone.
      if (this.failures++ === 0) this.options.log.warn({ err: (err as Error).message }, 'fleet heartbeat failed');
    }
  }

  /** A clean stop removes the record at once rather than letting it expire. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const { redis, keys } = this.options;
    await redis.multi().del(keys.router(this.id)).zrem(keys.routersIndexKey, this.id).exec().catch(() => undefined);
  }
}

/**
 * One undici keep-alive Pool per container origin, shared by every request to it. Pools
 * unused for `idleCloseMs` are closed by a sweep, so containers that went away do not keep
 * sockets and timers forever; a request for an origin whose pool was closed makes a new one.
 */
import { Pool } from 'undici';

export interface UpstreamPoolOptions {
  /** Connections per origin (RouterConfig.upstreamConnections). */
  connections: number;
  connectTimeoutMs: number;
  /** Default 60 s. */
  idleCloseMs?: number;
}

interface Entry {
  pool: Pool;
  /** Sweeps since the last request; reset by `get`, so the hot path only writes a number. */
  unusedSweeps: number;
}

/** A pool is closed after this many sweeps with no request; sweeps run every idleCloseMs / (SWEEPS - 1). */
const SWEEPS = 3;

export class UpstreamPools {
  private readonly entries = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: UpstreamPoolOptions) {
    const idle = options.idleCloseMs ?? 60_000;
    this.timer = setInterval(() => this.sweep(), Math.max(10, Math.floor(idle / (SWEEPS - 1))));
    this.timer.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  get(origin: string): Pool {
    const entry = this.entries.get(origin);
    if (entry !== undefined) {
      entry.unusedSweeps = 0;
      return entry.pool;
    }
    const pool = new Pool(origin, {
      connections: this.options.connections,
      connect: { timeout: this.options.connectTimeoutMs },
      // Timeouts are per request (dispatch options) and the router's idle sweep.
      bodyTimeout: 0,
    });
    this.entries.set(origin, { pool, unusedSweeps: 0 });
    return pool;
  }

  /** Closes the pools unused for long enough and without requests; public for tests. */
  sweep(): void {
    for (const [origin, entry] of this.entries) {
      if (++entry.unusedSweeps < SWEEPS || entry.pool.stats.size > 0) continue;
      this.entries.delete(origin);
      entry.pool.close().catch(() => undefined);
    }
  }

  /** Lets in-flight requests finish, then closes every pool. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const pools = [...this.entries.values()].map((e) => e.pool);
    this.entries.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }

  /** Closes every pool now, failing what is still in flight. */
  async destroy(): Promise<void> {
    clearInterval(this.timer);
    const pools = [...this.entries.values()].map((e) => e.pool);
    this.entries.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}

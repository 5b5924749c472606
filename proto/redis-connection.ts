/**
 * How every service reaches the store: one URL, or Sentinel. Commands fail fast while the
 * connection is down (no offline queue, bounded command time) so callers can answer
 * STORE_UNAVAILABLE within a second instead of hanging, and the client keeps reconnecting
 * on its own so a service recovers when Redis returns.
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface StoreAddress {
  redisUrl: URL | undefined;
  redisSentinels: Array<{ host: string; port: number }> | undefined;
  redisSentinelName: string;
}

export interface ConnectOptions {
  /** Shown in CLIENT LIST, to tell the services' connections apart. */
  connectionName: string;
  /** Per-command bound; subscribers pass 0 (a subscription has no reply to wait for). */
  commandTimeoutMs?: number;
}

export function connectRedis(address: StoreAddress, options: ConnectOptions): Redis {
  const common: RedisOptions = {
    connectionName: options.connectionName,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    lazyConnect: false,
    retryStrategy: (times: number) => Math.min(50 * times, 1000),
  };
  if (options.commandTimeoutMs !== undefined && options.commandTimeoutMs > 0) common.commandTimeout = options.commandTimeoutMs;

  if (address.redisSentinels !== undefined) {
    return new Redis({ ...common, sentinels: address.redisSentinels, name: address.redisSentinelName });
  }
  if (address.redisUrl === undefined) {
    throw new Error('REDIS_URL or REDIS_SENTINELS must be set (npm start sets REDIS_URL to its embedded redis-server)');
  }
  return new Redis(address.redisUrl.toString(), common);
}

/**
 * Resolves true once the connection is ready, false after `timeoutMs`. Without an offline
 * queue, a command sent while the first connect is still under way fails at once: a service
 * waits for this (bounded) before it takes requests, so its first callers get answers rather
 * than 503s; a Redis that is really down still lets it start, answering 503 until it is back.
 */
export function whenReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ready: boolean): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ready);
    };
    const onReady = (): void => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.on('ready', onReady);
  });
}

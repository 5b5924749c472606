/**
 * One router process: its Redis connections, the route resolver, the public server. Used
 * by each cluster worker, by a single-process router (ROUTER_WORKERS=1), and by tests.
 */
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { KeySchema } from '../../proto/keys.js';
import { connectRedis } from '../../proto/redis-connection.js';
import { AcmeResponder } from './acme/acme-responder.js';
import type { RouterConfig } from './config.js';
import { createRouterServer, type RouterServer } from './http-server.js';
import { RouterMetrics } from './metrics.js';
import type { AccessLogLine } from './proxy/access-log.js';
import { RedisRouteResolver } from './routing/route-resolver.js';

export interface RouterOptions {
  /** Where access-log lines go; default: JSON lines on stdout (asynchronous, buffered). */
  accessLog?: (line: AccessLogLine) => void;
  /** Overrides the port to listen on (tests use 0). */
  port?: number;
}

export interface Router {
  port: number;
  metrics: RouterMetrics;
  resolver: RedisRouteResolver;
  server: RouterServer;
  readiness(): { ready: boolean; detail: Record<string, unknown> };
  /** Stop accepting, let in-flight work finish up to `timeoutMs`, then release everything. */
  drain(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Access lines bypass the service logger: no level, no pid/hostname, buffered writes. */
function stdoutAccessLog(): { write: (line: AccessLogLine) => void; flush: () => void } {
  const destination = pino.destination({ fd: 1, sync: false });
  const logger = pino({ base: null, timestamp: false, messageKey: 'msg' }, destination);
  return { write: (line) => logger.info(line), flush: () => destination.flushSync() };
}

export async function startRouter(config: RouterConfig, log: Logger, options: RouterOptions = {}): Promise<Router> {
  const keys = new KeySchema(config.redisPrefix);
  const metrics = new RouterMetrics(config.metricsMaxApps);
  // Lookups must fail fast while Redis is down, so cached routes and 503s keep flowing.
  const redis: Redis = connectRedis(config, { connectionName: 'router', commandTimeoutMs: 1000 });
  const subscriber: Redis = connectRedis(config, { connectionName: 'router-subscriber' });
  for (const conn of [redis, subscriber]) conn.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));

  const resolver = new RedisRouteResolver({
    redis,
    subscriber,
    keys,
    metrics,
    log,
    max: config.cacheMax,
    ttlMs: config.cacheTtlMs,
    negativeTtlMs: config.negativeTtlMs,
  });
  await resolver.start();

  const stdoutLog = options.accessLog === undefined ? stdoutAccessLog() : null;
  // The backlog limit is per router; round-robin accept spreads requests evenly, so each
  // worker enforces its share.
  const workerConfig: RouterConfig = { ...config, maxInflightPerApp: Math.max(1, Math.ceil(config.maxInflightPerApp / config.workers)) };
  const server = createRouterServer({
    routes: resolver,
    metrics,
    config: workerConfig,
    accessLog: options.accessLog ?? stdoutLog!.write,
    log,
    // On the lookup connection: a challenge answer is one GET, like a route miss.
    acme: new AcmeResponder({ redis, keys }),
  });
  const port = await server.listen(config.host, options.port ?? config.httpPort);

  let closed = false;
  const release = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await resolver.close();
    redis.disconnect();
    subscriber.disconnect();
    stdoutLog?.flush();
  };

  return {
    port,
    metrics,
    resolver,
    server,
    readiness() {
      const ready = resolver.ready(config.maxStalenessMs);
      return { ready, detail: { ...resolver.status(), ...server.stats() } };
    },
    async drain(timeoutMs) {
      await server.drain(timeoutMs);
      await release();
    },
    async close() {
      await server.close();
      await release();
    },
  };
}

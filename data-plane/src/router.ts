/**
 * One router process: its Redis connections, the route resolver, the public server. Used
 * by each cluster worker, by a single-process router (ROUTER_WORKERS=1), and by tests.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { keyRingFrom } from '../../proto/key-envelope.js';
import { KeySchema } from '../../proto/keys.js';
import { connectRedis } from '../../proto/redis-connection.js';
import { createAccessLogShipping } from './access-logs/shipping.js';
import { AcmeResponder } from './acme/acme-responder.js';
import type { RouterConfig } from './config.js';
import { createRouterServer, createSharedProxyState, type RouterServer } from './http-server.js';
import { RouterMetrics } from './metrics.js';
import type { AccessLogLine } from './proxy/access-log.js';
import { RedisRouteResolver } from './routing/route-resolver.js';
import { Certificates } from './tls/certificates.js';
import { CertStore, type CertSource } from './tls/cert-store.js';
import { loadDefaultCerts, shadowsRsa } from './tls/default-certs.js';

export interface RouterOptions {
  /** Where access-log lines go; default: batches to the log-shipper (LOG_SHIPPER_URL), else NDJSON on stdout. */
  accessLog?: (line: AccessLogLine) => void;
  /** Overrides the port to listen on (tests use 0). */
  port?: number;
  /** Overrides the HTTPS listener's port (default ROUTER_HTTPS_PORT; tests use 0). */
  httpsPort?: number;
  /** Wraps the certificate source (tests count or delay Redis lookups). */
  wrapCertSource?: (source: CertSource) => CertSource;
}

export interface Router {
  port: number;
  /** The bound port of the HTTPS listener. */
  httpsPort: number;
  metrics: RouterMetrics;
  resolver: RedisRouteResolver;
  server: RouterServer;
  httpsServer: RouterServer;
  certificates: Certificates;
  readiness(): { ready: boolean; detail: Record<string, unknown> };
  /** Stop accepting, let in-flight work finish up to `timeoutMs`, then release everything. */
  drain(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startRouter(config: RouterConfig, log: Logger, options: RouterOptions = {}): Promise<Router> {
  const keys = new KeySchema(config.redisPrefix);
  const metrics = new RouterMetrics(config.metricsMaxApps);
  // Lookups must fail fast while Redis is down, so cached routes and 503s keep flowing.
  const redis: Redis = connectRedis(config, { connectionName: 'router', commandTimeoutMs: 1000 });
  const subscriber: Redis = connectRedis(config, { connectionName: 'router-subscriber' });
  for (const conn of [redis, subscriber]) conn.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));

  // Nothing is loaded from Redis here: certificates are read by the first handshake that needs them.
  const certStore = new CertStore(redis, keys, keyRingFrom(config));
  const defaults = loadDefaultCerts(config);
  if (shadowsRsa(defaults.fallbackPem)) log.warn('ROUTER_DEFAULT_CERT has an EC key: RSA certificates of custom domains will lose to it with clients that accept ECDSA; use an RSA default certificate');
  const certificates = new Certificates({
    source: options.wrapCertSource?.(certStore) ?? certStore,
    defaults,
    platformDomain: config.platformDomain,
    cacheMax: config.certCacheMax,
    negativeTtlMs: config.certNegativeTtlMs,
    metrics,
    log,
  });

  const resolver = new RedisRouteResolver({
    redis,
    subscriber,
    keys,
    metrics,
    log,
    max: config.cacheMax,
    ttlMs: config.cacheTtlMs,
    negativeTtlMs: config.negativeTtlMs,
    onCerts: (names) => certificates.invalidate(names),
    onFlush: () => certificates.flush(),
  });
  await resolver.start();

  const accessLogs = options.accessLog === undefined ? createAccessLogShipping(config, metrics, log) : null;
  // The backlog limit is per router; round-robin accept spreads requests evenly, so each
  // worker enforces its share.
  const workerConfig: RouterConfig = { ...config, maxInflightPerApp: Math.max(1, Math.ceil(config.maxInflightPerApp / config.workers)) };
  // One balancer, pool set and backlog for both listeners: a container ejected over HTTP is
  // skipped over HTTPS too, and the per-app limit counts both.
  const shared = createSharedProxyState(workerConfig, metrics);
  const common = { routes: resolver, metrics, config: workerConfig, accessLog: options.accessLog ?? accessLogs!.sink, log, shared };
  const server = createRouterServer({
    ...common,
    // On the lookup connection: a challenge answer is one GET, like a route miss.
    acme: new AcmeResponder({ redis, keys }),
  });
  const httpsServer = createRouterServer({ ...common, tls: certificates.tlsOptions() });
  const port = await server.listen(config.host, options.port ?? config.httpPort);
  const httpsPort = await httpsServer.listen(config.host, options.httpsPort ?? config.httpsPort);

  let closed = false;
  const release = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await resolver.close();
    redis.disconnect();
    subscriber.disconnect();
    // Last: the listeners are closed, so the final lines are in; waits (bounded) for their acks.
    await accessLogs?.close();
  };

  return {
    port,
    httpsPort,
    metrics,
    resolver,
    server,
    httpsServer,
    certificates,
    readiness() {
      const ready = resolver.ready(config.maxStalenessMs);
      const plain = server.stats();
      const tls = httpsServer.stats();
      return { ready, detail: { ...resolver.status(), inflight: plain.inflight + tls.inflight, websockets: plain.websockets + tls.websockets, certCacheSize: certificates.cache.size } };
    },
    async drain(timeoutMs) {
      await Promise.all([server.drain(timeoutMs), httpsServer.drain(timeoutMs)]);
      // Both listeners are done with the pools: let what remains finish briefly, then close.
      await Promise.race([shared.pools.close(), new Promise((r) => setTimeout(r, 200))]);
      await shared.pools.destroy();
      await release();
    },
    async close() {
      await Promise.all([server.close(), httpsServer.close()]);
      await shared.pools.destroy();
      await release();
    },
  };
}

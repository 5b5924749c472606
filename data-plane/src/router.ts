/**
 * One router process: its Redis connections, the route resolver, the public server. Used
 * by each cluster worker, by a single-process router (ROUTER_WORKERS=1), and by tests.
 */
import cluster from 'node:cluster';
import https from 'node:https';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { keyRingFrom } from '../../proto/key-envelope.js';
import { KeySchema } from '../../proto/keys.js';
import { connectRedis } from '../../proto/redis-connection.js';
import { createAccessLogShipping } from './access-logs/shipping.js';
import { AcmeResponder } from './acme/acme-responder.js';
import type { RouterConfig } from './config.js';
import { createRouterServer, createSharedProxyState, type RouterServer } from './http-server.js';
import { Heartbeat } from './fleet/heartbeat.js';
import { RouterMetrics } from './metrics.js';
import type { AccessLogLine } from './proxy/access-log.js';
import { RedisRouteResolver } from './routing/route-resolver.js';
import { Certificates } from './tls/certificates.js';
import { CertStore, type CertSource } from './tls/cert-store.js';
import { loadDefaultCerts, shadowsRsa } from './tls/default-certs.js';
import { TicketKeyStore } from './tls/ticket-key-store.js';
import { TicketKeys } from './tls/ticket-keys.js';

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
  /** The HTTPS listener's session ticket key (shared through Redis). */
  ticketKeys: TicketKeys;
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
  const ring = keyRingFrom(config);
  const certStore = new CertStore(redis, keys, ring);
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
  const tlsServer = httpsServer.server;
  if (!(tlsServer instanceof https.Server)) throw new Error('the HTTPS listener is not a TLS server');
  const ticketKeys = new TicketKeys({
    store: ring === undefined ? undefined : new TicketKeyStore(redis, keys, ring, config.ticketKeyRotateMs),
    redis,
    periodMs: config.ticketKeyRotateMs,
    metrics,
    log,
    apply: (key) => tlsServer.setTicketKeys(key),
  });
  // Both wait for Redis (bounded) so the first handshakes use the fleet's ticket key and
  // current routes; neither blocks the start when Redis is down.
  await Promise.all([resolver.start(), ticketKeys.start()]);
  const port = await server.listen(config.host, options.port ?? config.httpPort);
  const httpsPort = await httpsServer.listen(config.host, options.httpsPort ?? config.httpsPort);
  // Under node:cluster, listen() installed the key the first worker had at its start (see reapply).
  ticketKeys.reapply();
  const stats = (): { inflight: number; websockets: number } => {
    const plain = server.stats();
    const tls = httpsServer.stats();
    return { inflight: plain.inflight + tls.inflight, websockets: plain.websockets + tls.websockets };
  };
  const heartbeat = new Heartbeat({ redis, keys, metrics, log, intervalMs: config.heartbeatIntervalMs, worker: cluster.worker?.id ?? 0, source: { status: () => resolver.status(), stats } });
  heartbeat.start();

  let closed = false;
  const release = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await heartbeat.stop();
    ticketKeys.close();
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
    ticketKeys,
    readiness() {
      const ready = resolver.ready(config.maxStalenessMs);
      const key = ticketKeys.status();
      return {
        ready,
        detail: {
          ...resolver.status(),
          ...stats(),
          certCacheSize: certificates.cache.size,
          // Per worker (metrics are summed): which ticket key it uses, and what it resumed.
          // The key's name (its first 16 bytes) travels in clear in every ticket, so it can be
          // shown: read from the TLS server itself, it proves what is installed, not what was meant.
          tls: {
            ...httpsServer.handshakes(),
            ticketKeyEpoch: key.epoch,
            ticketKeyShared: key.shared,
            ticketKeyName: tlsServer.getTicketKeys().subarray(0, 16).toString('hex'),
          },
        },
      };
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

/**
 * Composition root: one Redis connection, one EventService, two thin front ends.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { keyRingFrom } from '../../proto/key-envelope.js';
import { KeySchema } from '../../proto/keys.js';
import { connectRedis, whenReady } from '../../proto/redis-connection.js';
import { Authenticator } from './auth.js';
import type { ControlPlaneConfig } from './config.js';
import { AcmeChallengeService } from './core/acme.js';
import { EventService } from './core/event-service.js';
import { GrpcFront } from './grpc/grpc-server.js';
import { buildRestServer } from './http/rest-server.js';
import { ControlPlaneMetrics } from './metrics.js';
import { AcmeStore } from './store/acme-store.js';
import { FleetStore } from './store/fleet-store.js';
import { RouteStore } from './store/route-store.js';

export interface ControlPlane {
  /** Actual ports (useful when configured as 0). */
  restPort: number;
  grpcPort: number;
  service: EventService;
  metrics: ControlPlaneMetrics;
  close(): Promise<void>;
}

/** How long a starting control plane waits for its first Redis connection before listening anyway. */
const READY_WAIT_MS = 3_000;

export async function startControlPlane(config: ControlPlaneConfig, log: Logger): Promise<ControlPlane> {
  const redis: Redis = connectRedis(config, { connectionName: 'control-plane', commandTimeoutMs: 1000 });
  redis.on('error', (err: Error) => log.debug({ err: err.message }, 'redis connection error'));
  if (!(await whenReady(redis, READY_WAIT_MS))) log.warn({ waitedMs: READY_WAIT_MS }, 'Redis is not reachable yet: starting anyway, answering 503 STORE_UNAVAILABLE until it is');
  const keys = new KeySchema(config.redisPrefix);
  const store = new RouteStore(redis, keys);
  const metrics = new ControlPlaneMetrics();
  const service = new EventService(store, metrics, log, {
    platformDomain: config.platformDomain,
    idempotencyTtlSeconds: config.idempotencyTtl,
    keyRing: keyRingFrom(config),
  });
  const auth = new Authenticator({ tokens: config.tokens ?? [], hookSecret: config.hookSecret }, store, metrics);

  const acme = new AcmeChallengeService(new AcmeStore(redis, keys), (err, operation) => service.toApiError(err, operation));
  const rest = buildRestServer({ service, acme, auth, metrics, log, platformDomain: config.platformDomain, fleet: new FleetStore(redis, keys) });
  const grpc = new GrpcFront({ service, auth, log, platformDomain: config.platformDomain });
  try {
    await rest.listen({ host: config.host, port: config.port });
    const grpcPort = await grpc.listen(config.host, config.grpcPort);
    const address = rest.server.address();
    const restPort = typeof address === 'object' && address !== null ? address.port : config.port;
    return {
      restPort,
      grpcPort,
      service,
      metrics,
      async close() {
        await Promise.allSettled([rest.close(), grpc.close()]);
        redis.disconnect();
      },
    };
  } catch (err) {
    await Promise.allSettled([rest.close(), grpc.close()]);
    redis.disconnect();
    throw err;
  }
}

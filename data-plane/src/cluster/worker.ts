/**
 * A cluster worker: one router process that answers the primary's readiness questions and
 * drains when told to.
 */
import type { Logger } from 'pino';
import type { RouterConfig } from '../config.js';
import { startRouter } from '../router.js';
import { isMessage, type PrimaryToWorker, type WorkerToPrimary } from './messages.js';
import { AggregatorRegistry } from 'prom-client';

export async function runWorker(config: RouterConfig, log: Logger): Promise<void> {
  const router = await startRouter(config, log);
  // The primary's /metrics collects from this registry over IPC. prom-client installs the
  // worker's IPC listener only when an AggregatorRegistry is constructed in the worker.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([router.metrics.registry]);
  const send = (message: WorkerToPrimary): void => {
    process.send?.(message);
  };
  send({ type: 'router:listening', port: router.port });

  let draining = false;
  const drain = (): void => {
    if (draining) return;
    draining = true;
    router.drain(config.drainTimeoutMs).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('message', (message: unknown) => {
    if (isMessage<PrimaryToWorker>(message, 'router:drain')) drain();
    else if (isMessage<Extract<PrimaryToWorker, { type: 'router:readiness?' }>>(message, 'router:readiness?')) {
      const r = router.readiness();
      send({ type: 'router:readiness', id: message.id, ready: r.ready && !draining, detail: r.detail });
    }
  });
  // The primary handles signals for the whole group; a worker ignores them so a Ctrl-C (or a
  // hangup) to the process group does not cut its drain short.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  process.on('SIGHUP', () => undefined);
  process.on('disconnect', drain);
}

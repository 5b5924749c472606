/**
 * `npm run router`: configured only by the environment. With ROUTER_WORKERS > 1 this
 * process becomes the cluster primary and each worker re-runs this file as a worker.
 */
import cluster from 'node:cluster';
import { pino } from 'pino';
import { ConfigError } from '../../proto/config/env.js';
import { startAdminServer } from './admin-server.js';
import { runPrimary } from './cluster/primary.js';
import { runWorker } from './cluster/worker.js';
import { semiSpaceSetIn } from './cluster/worker-flags.js';
import { loadRouterConfig, type RouterConfig } from './config.js';
import { startRouter } from './router.js';
import { readCertFiles } from './tls/default-certs.js';

const log = pino({ name: 'router', level: process.env['LOG_LEVEL'] ?? 'info' });

async function runSingle(config: RouterConfig): Promise<void> {
  const router = await startRouter(config, log);
  const admin = await startAdminServer(
    {
      async metrics() {
        return { contentType: router.metrics.registry.contentType, body: await router.metrics.registry.metrics() };
      },
      async readiness() {
        return router.readiness();
      },
    },
    config.adminHost,
    config.adminPort,
  );
  log.info({ http: `http://${config.host}:${router.port}`, admin: `http://${config.adminHost}:${admin.port}`, workers: 1 }, 'router listening');
  if (config.semiSpaceMb !== 0 && !semiSpaceSetIn(process.execArgv, process.env['NODE_OPTIONS'])) {
    // Too late for this process: V8 sized its heap before any of our code ran.
    log.info({ semiSpaceMb: config.semiSpaceMb }, `ROUTER_SEMI_SPACE_MB applies to cluster workers only: with ROUTER_WORKERS=1, set NODE_OPTIONS=--max-semi-space-size=${config.semiSpaceMb}`);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'draining');
    router
      .drain(config.drainTimeoutMs)
      .then(() => admin.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'error while draining');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Replacing the code in place takes a primary that outlives its workers.
  process.on('SIGHUP', () => log.warn('SIGHUP ignored: a zero-downtime upgrade needs the cluster primary (ROUTER_WORKERS other than 1)'));
}

async function main(): Promise<void> {
  let config: RouterConfig;
  try {
    config = loadRouterConfig();
    // The certificate files are part of the configuration: checked here, in the primary too.
    if (!cluster.isWorker) readCertFiles(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`router: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  log.level = config.logLevel;
  if (cluster.isWorker) return runWorker(config, log.child({ worker: cluster.worker?.id }));
  if (config.workers > 1) {
    const { adminPort } = await runPrimary(config, log);
    log.info({ http: `http://${config.host}:${config.httpPort}`, admin: `http://${config.adminHost}:${adminPort}`, workers: config.workers }, 'router listening');
    return;
  }
  return runSingle(config);
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'router failed to start');
  process.exit(1);
});

/**
 * The cluster primary: forks ROUTER_WORKERS workers with round-robin accept, replaces a
 * worker that dies, serves the admin endpoints for all of them (metrics aggregated over
 * IPC, ready only when every worker is), and on SIGTERM tells each worker to drain.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { startAdminServer, type AdminServer } from '../admin-server.js';
import type { RouterConfig } from '../config.js';
import { isMessage, type PrimaryToWorker, type WorkerToPrimary } from './messages.js';

type Readiness = Extract<WorkerToPrimary, { type: 'router:readiness' }>;

const READINESS_TIMEOUT_MS = 1000;
/** A worker that keeps dying right after start is replaced with a growing delay. */
const RESTART_WINDOW_MS = 10_000;

export async function runPrimary(config: RouterConfig, log: Logger): Promise<{ adminPort: number }> {
  // Round-robin accept in the primary: the kernel's default spreads connections unevenly
  // between workers (the Cloudflare write-up in our seeds measured it).
  cluster.schedulingPolicy = cluster.SCHED_RR;
  const aggregator = new AggregatorRegistry();
  const listening = new Map<number, number>();
  let stopping = false;
  let nextQuestion = 1;
  const recentDeaths: number[] = [];

  const send = (worker: Worker, message: PrimaryToWorker): void => {
    if (worker.isConnected()) worker.send(message);
  };

  let onAllListening: () => void = () => undefined;
  const allListening = new Promise<void>((resolve) => {
    onAllListening = resolve;
  });

  const fork = (): void => {
    const worker = cluster.fork();
    worker.on('message', (message: unknown) => {
      if (isMessage<Extract<WorkerToPrimary, { type: 'router:listening' }>>(message, 'router:listening')) {
        listening.set(worker.id, message.port);
        log.info({ worker: worker.id, workerPid: worker.process.pid, port: message.port }, 'router worker listening');
        if (listening.size >= config.workers) onAllListening();
      }
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id);
    if (stopping) return;
    log.error({ worker: worker.id, workerPid: worker.process.pid, code, signal }, 'router worker died; replacing it');
    const now = Date.now();
    recentDeaths.push(now);
    while (recentDeaths.length > 0 && recentDeaths[0]! < now - RESTART_WINDOW_MS) recentDeaths.shift();
    setTimeout(fork, Math.min(100 * 2 ** Math.max(0, recentDeaths.length - 2), 5000));
  });

  for (let i = 0; i < config.workers; i++) fork();
  await allListening;

  const ask = (worker: Worker): Promise<Readiness | null> =>
    new Promise((resolve) => {
      const id = nextQuestion++;
      const timer = setTimeout(() => {
        worker.off('message', onMessage);
        resolve(null);
      }, READINESS_TIMEOUT_MS);
      const onMessage = (message: unknown): void => {
        if (isMessage<Readiness>(message, 'router:readiness') && message.id === id) {
          clearTimeout(timer);
          worker.off('message', onMessage);
          resolve(message);
        }
      };
      worker.on('message', onMessage);
      send(worker, { type: 'router:readiness?', id });
    });

  let admin: AdminServer | null = null;
  admin = await startAdminServer(
    {
      async metrics() {
        const body = await aggregator.clusterMetrics();
        return { contentType: aggregator.contentType, body };
      },
      async readiness() {
        const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
        const answers = await Promise.all(workers.map(ask));
        const ready = !stopping && workers.length === config.workers && answers.every((a) => a?.ready === true);
        return { ready, detail: { workers: answers.map((a, i) => ({ id: workers[i]!.id, ready: a?.ready ?? false, ...(a?.detail ?? { error: 'no answer' }) })) } };
      },
    },
    config.adminHost,
    config.adminPort,
  );

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'draining router workers');
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    for (const w of workers) send(w, { type: 'router:drain' });
    const hardStop = setTimeout(() => {
      log.warn('workers did not finish draining in time; killing them');
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    }, config.drainTimeoutMs + 5000);
    hardStop.unref();
    const check = setInterval(() => {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        clearInterval(check);
        void admin?.close().then(() => process.exit(0));
      }
    }, 50);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return { adminPort: admin.port };
}

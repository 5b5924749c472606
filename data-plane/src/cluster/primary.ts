/**
 * The cluster primary: forks ROUTER_WORKERS workers with round-robin accept, replaces a
 * worker that dies, serves the admin endpoints for all of them (metrics aggregated over
 * IPC, ready only when every worker is), replaces its workers one by one on SIGHUP
 * (zero-downtime upgrade), and on SIGTERM tells each worker to drain.
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { startAdminServer, type AdminServer } from '../admin-server.js';
import type { RouterConfig } from '../config.js';
import { DEFAULT_COMMON_NAME } from '../tls/default-certs.js';
import { generateSelfSigned } from '../tls/self-signed.js';
import { isMessage, type PrimaryToWorker, type WorkerToPrimary } from './messages.js';
import { workerExecArgv } from './worker-flags.js';

type Readiness = Extract<WorkerToPrimary, { type: 'router:readiness' }>;

const READINESS_TIMEOUT_MS = 1000;
/** A worker that keeps dying right after start is replaced with a growing delay. */
const RESTART_WINDOW_MS = 10_000;
/** How long a worker started by an upgrade may take to report ready. */
const UPGRADE_READY_TIMEOUT_MS = 30_000;

export async function runPrimary(config: RouterConfig, log: Logger): Promise<{ adminPort: number }> {
  // Round-robin accept in the primary by default: the kernel spreads connections unevenly
  // between workers (the Cloudflare write-up in our seeds measured it). But the handoff of
  // each socket over IPC costs: 'kernel' lets workers accept, ~1.7x more new connections/s here.
  cluster.schedulingPolicy = config.accept === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  // Under --inspect, each worker's inspector on a free port of its own rather than the
  // primary's port + n, which may be taken (and is by a second router on the machine).
  cluster.setupPrimary({ inspectPort: 0, execArgv: workerExecArgv(process.execArgv, process.env['NODE_OPTIONS'], config.semiSpaceMb) });
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

  /** Workers that take new connections; a worker retired by an upgrade leaves this set and drains. */
  const active = new Set<number>();
  const retiring = new Set<number>();

  const workerEnv = sharedDefaultCertificate(config, log);

  /** Resolves once the worker listens (true), or false if it exits first. */
  const fork = (): Promise<{ worker: Worker; listening: boolean }> => {
    const worker = cluster.fork(workerEnv);
    return new Promise((resolve) => {
      worker.on('message', (message: unknown) => {
        if (isMessage<Extract<WorkerToPrimary, { type: 'router:listening' }>>(message, 'router:listening')) {
          listening.set(worker.id, message.port);
          active.add(worker.id);
          log.info({ worker: worker.id, workerPid: worker.process.pid, port: message.port }, 'router worker listening');
          if (listening.size >= config.workers) onAllListening();
          resolve({ worker, listening: true });
        }
      });
      worker.once('exit', () => resolve({ worker, listening: false }));
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id);
    active.delete(worker.id);
    if (retiring.delete(worker.id)) {
      log.info({ worker: worker.id, workerPid: worker.process.pid, code }, 'retired router worker finished draining');
      return;
    }
    if (stopping) return;
    log.error({ worker: worker.id, workerPid: worker.process.pid, code, signal }, 'router worker died; replacing it');
    const now = Date.now();
    recentDeaths.push(now);
    while (recentDeaths.length > 0 && recentDeaths[0]! < now - RESTART_WINDOW_MS) recentDeaths.shift();
    setTimeout(() => void fork(), Math.min(100 * 2 ** Math.max(0, recentDeaths.length - 2), 5000));
  });

  for (let i = 0; i < config.workers; i++) void fork();
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

  const activeWorkers = (): Worker[] => [...active].map((id) => cluster.workers?.[id]).filter((w): w is Worker => w !== undefined);

  /** Polls a fresh worker until it says it is ready (routes resolvable, subscriber live). */
  const becomesReady = async (worker: Worker): Promise<boolean> => {
    const deadline = Date.now() + UPGRADE_READY_TIMEOUT_MS;
    while (Date.now() < deadline && !worker.isDead()) {
      if ((await ask(worker))?.ready === true) return true;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return false;
  };

  /**
   * Zero-downtime upgrade: each worker in turn is replaced by one running the code now on
   * disk. The new one must listen and report ready before the old one stops accepting and
   * drains (its WebSockets stay until they close or ROUTER_DRAIN_TIMEOUT, then get 1001).
   * A new worker that fails to get ready stops the upgrade: the old ones keep serving.
   */
  const upgrade = async (): Promise<void> => {
    const old = activeWorkers();
    log.info({ workers: old.length }, 'upgrading router workers one at a time');
    for (const previous of old) {
      if (stopping) return;
      const { worker, listening: up } = await fork();
      if (!up || !(await becomesReady(worker))) {
        log.error({ worker: worker.id }, 'a new router worker did not get ready; upgrade stopped, the current workers keep serving');
        if (!worker.isDead()) {
          retiring.add(worker.id);
          active.delete(worker.id);
          worker.process.kill('SIGKILL');
        }
        return;
      }
      if (previous.isDead()) continue;
      active.delete(previous.id);
      retiring.add(previous.id);
      send(previous, { type: 'router:drain' });
      log.info({ retired: previous.id, replacement: worker.id }, 'router worker replaced; the old one drains');
    }
    log.info('router workers upgraded');
  };
  let upgrading: Promise<void> | null = null;
  let upgradeAgain = false;
  const requestUpgrade = (): void => {
    if (stopping) return;
    // A SIGHUP during an upgrade means newer code again: one more pass after this one.
    if (upgrading !== null) {
      upgradeAgain = true;
      return;
    }
    upgrading = upgrade()
      .catch((err: unknown) => log.error({ err }, 'upgrade failed'))
      .finally(() => {
        upgrading = null;
        if (upgradeAgain) {
          upgradeAgain = false;
          requestUpgrade();
        }
      });
  };
  process.on('SIGHUP', requestUpgrade);

  let admin: AdminServer | null = null;
  admin = await startAdminServer(
    {
      async metrics() {
        const body = await aggregator.clusterMetrics();
        return { contentType: aggregator.contentType, body };
      },
      async readiness() {
        // Retiring workers drain and no longer take connections: they do not count.
        const workers = activeWorkers();
        const answers = await Promise.all(workers.map(ask));
        const ready = !stopping && workers.length >= config.workers && answers.every((a) => a?.ready === true);
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

/**
 * Without ROUTER_DEFAULT_CERT, the primary generates the self-signed default certificate
 * once and hands its files to every worker — the ones started later by a crash or an
 * upgrade too: clients see one default certificate whichever worker answers, and a worker
 * starts without spending ~0.3 s of CPU on an RSA key. The files live in a private
 * temporary directory removed when the primary exits.
 */
function sharedDefaultCertificate(config: RouterConfig, log: Logger): Record<string, string> {
  if (config.defaultCertFile !== undefined) return {};
  const dir = mkdtempSync(join(tmpdir(), 'platform-router-'));
  const pair = generateSelfSigned(DEFAULT_COMMON_NAME);
  const cert = join(dir, 'default-cert.pem');
  const key = join(dir, 'default-key.pem');
  writeFileSync(cert, pair.cert, { mode: 0o600 });
  writeFileSync(key, pair.key, { mode: 0o600 });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  log.info('generated a self-signed default certificate for the workers (set ROUTER_DEFAULT_CERT for a real one)');
  return { ROUTER_DEFAULT_CERT: cert, ROUTER_DEFAULT_KEY: key };
}

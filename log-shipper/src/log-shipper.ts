/**
 * The log shipper in one process: the shared listener (routers and HTTP), the batch
 * pipeline, the backends and the live tails. `createLogShipper` is the seam main.ts, the
 * tests and `npm start` use; backends are built from LOG_BACKENDS unless given.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { TokenSet } from './auth.js';
import type { LogBackend } from './backends/backend.js';
import { FileBackend } from './backends/file-backend.js';
import { tokensOf, type LogShipperConfig } from './config.js';
import { createApiHandler } from './http/api.js';
import { BatchProcessor } from './ingest/batch-processor.js';
import { startListener, type Listener } from './ingest/listener.js';
import { RouterConnection } from './ingest/router-connection.js';
import { SeqLedger } from './ingest/router-seqs.js';
import { ShipperMetrics } from './metrics.js';
import { LineRings } from './tail/line-ring.js';
import { TailHub } from './tail/tail-hub.js';

export const HELLO_TIMEOUT_MS = 5_000;
const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

export interface LogShipperOptions {
  /** Instead of building them from LOG_BACKENDS (tests). */
  backends?: LogBackend[];
  /** Default 5 s (tests shorten it). */
  helloTimeoutMs?: number;
  /** How long close() lets batches in flight finish before cutting connections. */
  drainTimeoutMs?: number;
  /** Bytes queued to one tail client before its lines are dropped (tests shrink it). */
  tailMaxBuffered?: number;
}

export interface LogShipper {
  port: number;
  metrics: ShipperMetrics;
  backends: readonly LogBackend[];
  readiness(): { ready: boolean; detail: Record<string, unknown> };
  /** SIGHUP: every backend reopens (the file backend reopens every file). */
  reopen(): Promise<void>;
  /** SIGTERM: stop accepting, finish batches in flight (bounded), end tails, close the backends. */
  close(): Promise<void>;
}

/** A backend that can say whether it can take writes now (the bullmq one: Redis connected). */
function readyOf(backend: LogBackend): boolean {
  const candidate = backend as LogBackend & { ready?: unknown };
  return typeof candidate.ready === 'function' ? Boolean((candidate.ready as () => unknown).call(backend)) : true;
}

async function buildBackends(config: LogShipperConfig, metrics: ShipperMetrics, log: Logger): Promise<LogBackend[]> {
  const built: LogBackend[] = [];
  try {
    for (const name of config.backends) {
      if (name === 'file') {
        built.push(await FileBackend.create(config, metrics, log.child({ backend: 'file' })));
      } else {
        // Loaded only when asked for, so a shipper without it never loads bullmq.
        const { createBullmqBackend } = await import('./backends/bullmq-backend.js');
        const { registerBullmqMetrics } = await import('./backends/bullmq-metrics.js');
        built.push(await createBullmqBackend(config, log.child({ backend: 'bullmq' }), registerBullmqMetrics(metrics.registry)));
      }
    }
  } catch (err) {
    await Promise.allSettled(built.map((b) => b.close()));
    throw err;
  }
  return built;
}

export async function createLogShipper(config: LogShipperConfig, log: Logger, options: LogShipperOptions = {}): Promise<LogShipper> {
  const metrics = new ShipperMetrics();
  const backends = options.backends ?? (await buildBackends(config, metrics, log));
  if (backends.length === 0) throw new Error('the log shipper needs at least one backend');
  const files = backends.find((b): b is FileBackend => b instanceof FileBackend) ?? null;
  const rings = files === null && config.tailBufferLines > 0 && config.tailBufferBytes > 0 ? new LineRings(config.tailBufferLines, config.tailBufferBytes) : null;
  const hub = new TailHub(metrics, rings);
  const tokens = new TokenSet(tokensOf(config));
  const processor = new BatchProcessor(backends, metrics, log);
  const ledger = new SeqLedger();
  const connections = new Set<RouterConnection>();
  let listening = false;
  let closing: Promise<void> | null = null;

  const readiness = (): { ready: boolean; detail: Record<string, unknown> } => {
    const detail: Record<string, boolean> = {};
    let ready = listening && closing === null;
    for (const b of backends) {
      const ok = readyOf(b);
      detail[b.name] = ok;
      ready &&= ok;
    }
    return { ready, detail: { listening: listening && closing === null, backends: detail } };
  };

  const history = (app: string, n: number): Promise<Buffer> => {
    if (files !== null) return files.lastLines(app, n);
    return Promise.resolve(rings?.last(app, n) ?? Buffer.alloc(0));
  };

  const httpServer = http.createServer(
    { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 },
    createApiHandler({ tokens, metrics, hub, history, readiness, log, ...(options.tailMaxBuffered === undefined ? {} : { tailMaxBuffered: options.tailMaxBuffered }) }),
  );
  // This server never listens: the shared listener hands it connections. node:http starts
  // tracking connections — which its headers/request timeouts (slowloris) and
  // closeAllConnections() rely on — on 'listening', so that event is raised by hand.
  httpServer.emit('listening');
  httpServer.on('clientError', (_err, socket: Socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  let listener: Listener;
  try {
    listener = await startListener(config.host, config.port, options.helloTimeoutMs ?? HELLO_TIMEOUT_MS, {
      http: httpServer,
      router(socket, rest, deadlineMs) {
        if (closing !== null) {
          socket.destroy();
          return;
        }
        const connection = new RouterConnection(socket, rest, deadlineMs, { tokens, processor, ledger, hub, metrics, log });
        connections.add(connection);
        void connection.closed.then(() => connections.delete(connection));
      },
    });
  } catch (err) {
    httpServer.close();
    await Promise.allSettled(backends.map((b) => b.close()));
    throw err;
  }
  listening = true;

  async function shutdown(): Promise<void> {
    listening = false;
    const stopped = new Promise<void>((resolve) => listener.server.close(() => resolve()));
    const drainMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    const drained = Promise.all([...connections].map((c) => c.drain()));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), drainMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) log.warn({ drainMs }, 'batches still in flight after the drain timeout: connections cut (their routers resend)');
    for (const c of connections) c.destroy();
    // Tails end cleanly (their last chunk flushed) before the HTTP connections are cut.
    hub.closeAll();
    httpServer.close(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    httpServer.closeAllConnections();
    await stopped;
    const results = await Promise.allSettled(backends.map((b) => b.close()));
    for (const r of results) if (r.status === 'rejected') log.error({ err: r.reason }, 'backend close failed');
  }

  return {
    port: listener.port,
    metrics,
    backends,
    readiness,
    async reopen() {
      const results = await Promise.allSettled(backends.map((b) => b.reopen()));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length > 0) throw failed[0]!.reason;
    },
    close() {
      closing ??= shutdown();
      return closing;
    },
  };
}

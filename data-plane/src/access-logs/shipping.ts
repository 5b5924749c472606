/**
 * The router's access-log sink: lines are encoded and batched per app on the request path
 * (a synchronous append), and batches go to the log-shipper (LOG_SHIPPER_URL) or, without
 * one, to stdout as NDJSON. The one entry point router.ts uses.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { RouterConfig } from '../config.js';
import type { RouterMetrics } from '../metrics.js';
import type { AccessLogSink } from '../proxy/access-log.js';
import { Batcher, type CutBatch } from './batcher.js';
import { DropReport } from './drop-report.js';
import { encodeAccessLine } from './line-encoder.js';
import { AccessLogMetrics } from './metrics.js';
import { ShipperClient } from './shipper-client.js';
import { StdoutWriter } from './stdout-writer.js';

/**
 * How long close() waits for the last acks. The cluster primary kills workers
 * ROUTER_DRAIN_TIMEOUT + 5 s after SIGTERM; the drain itself may use the first part.
 */
export const CLOSE_TIMEOUT_MS = 4000;

export type ShippingConfig = Pick<RouterConfig, 'logShipper' | 'logShipperToken' | 'logBatchBytes' | 'logBatchMs' | 'logSpoolBytes'>;

export interface AccessLogShipping {
  sink: AccessLogSink;
  /** Where batches go: 'shipper' or 'stdout'. */
  readonly mode: 'shipper' | 'stdout';
  /** The connection, in shipper mode (tests and readiness details). */
  readonly shipper: ShipperClient | null;
  readonly metrics: AccessLogMetrics;
  /** Cuts the pending batch, waits (bounded) for it and everything before it to be delivered, then closes. */
  close(timeoutMs?: number): Promise<void>;
}

export interface ShippingOverrides {
  /** Descriptor of stdout mode (tests write to a pipe). */
  fd?: number;
  /** Reconnection backoff bounds (tests shorten them). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  routerId?: string;
}

export function createAccessLogShipping(config: ShippingConfig, routerMetrics: RouterMetrics, log: Logger, overrides: ShippingOverrides = {}): AccessLogShipping {
  const metrics = new AccessLogMetrics(routerMetrics);
  const drops = new DropReport(metrics, log);
  let shipper: ShipperClient | null = null;
  let stdout: StdoutWriter | null = null;
  if (config.logShipper !== undefined) {
    shipper = new ShipperClient({
      host: config.logShipper.host,
      port: config.logShipper.port,
      token: config.logShipperToken ?? '',
      routerId: overrides.routerId ?? `${os.hostname()}:${process.pid}:${Date.now()}`,
      spoolBytes: config.logSpoolBytes,
      metrics,
      drops,
      log,
      ...(overrides.backoffMinMs === undefined ? {} : { backoffMinMs: overrides.backoffMinMs }),
      ...(overrides.backoffMaxMs === undefined ? {} : { backoffMaxMs: overrides.backoffMaxMs }),
    });
  } else {
    stdout = new StdoutWriter(overrides.fd ?? 1, config.logSpoolBytes, metrics, drops, log);
  }
  const deliver = (batch: CutBatch): void => {
    metrics.lines.inc(batch.lineCount);
    if (shipper !== null) shipper.enqueue(batch);
    else stdout!.enqueue(batch);
  };
  const batcher = new Batcher({ maxBytes: config.logBatchBytes, maxMs: config.logBatchMs, onBatch: deliver });
  let closed = false;

  return {
    sink(line) {
      if (closed) return;
      batcher.append(line.app, encodeAccessLine(line));
    },
    mode: shipper !== null ? 'shipper' : 'stdout',
    shipper,
    metrics,
    async close(timeoutMs = CLOSE_TIMEOUT_MS) {
      if (closed) return;
      closed = true;
      batcher.flush();
      batcher.close();
      if (shipper !== null) {
        const left = await shipper.close(timeoutMs);
        if (left > 0) log.error({ batches: left }, 'access-log batches not acknowledged by the log-shipper at shutdown: lost');
      } else {
        await stdout!.close(timeoutMs);
      }
      drops.flush();
    },
  };
}

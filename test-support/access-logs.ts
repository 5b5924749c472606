/**
 * Helpers for access-log shipping tests: the shipping module wired to a LogReceiver with
 * short backoffs, numbered lines to follow each one end to end, a pino logger whose lines
 * the test can read, and metric values.
 */
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { pino, type Logger } from 'pino';
import type { Counter, Gauge } from 'prom-client';
import { createAccessLogShipping, type AccessLogShipping, type ShippingConfig } from '../data-plane/src/access-logs/shipping.js';
import { RouterMetrics } from '../data-plane/src/metrics.js';
import { accessLine, type AccessLogLine } from '../data-plane/src/proxy/access-log.js';
import type { LogReceiver } from './log-receiver.js';

export interface CapturedLog {
  log: Logger;
  lines: Array<Record<string, unknown>>;
}

export function captureLog(): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

/** A line whose path carries its number (`/n/<i>`), for app `app` ('-': none). */
export function numberedLine(app: string, i: number): AccessLogLine {
  return accessLine(Date.now(), app === '-' ? 'UNKNOWN_HOST' : '-', app, 'GET', app === '-' ? 'nowhere.example' : `${app}.localhost`, `/n/${i}`, 200, 0, 10, 1, 2, `req-${i}`, 'c1', '127.0.0.1', 'http/1.1');
}

export function lineNumber(line: Record<string, unknown>): number {
  return Number(String(line['path']).slice(3));
}

export interface TestShipping {
  shipping: AccessLogShipping;
  metrics: RouterMetrics;
  captured: CapturedLog;
}

export function shipTo(t: TestContext, receiver: LogReceiver, config: Partial<ShippingConfig> & { token?: string; maxApps?: number } = {}): TestShipping {
  const metrics = new RouterMetrics(config.maxApps ?? 500);
  const captured = captureLog();
  const shipping = createAccessLogShipping(
    {
      logShipper: { host: '127.0.0.1', port: receiver.port },
      logShipperToken: config.token ?? receiver.token,
      logBatchBytes: config.logBatchBytes ?? 1024,
      logBatchMs: config.logBatchMs ?? 20,
      logSpoolBytes: config.logSpoolBytes ?? 64 * 1024 * 1024,
    },
    metrics,
    captured.log,
    { backoffMinMs: 10, backoffMaxMs: 100 },
  );
  t.after(() => shipping.close(200));
  return { shipping, metrics, captured };
}

/** The value of a counter or gauge for `labels` (0 when never set). */
export async function metricValue(metric: Counter | Gauge | Counter<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  const found = values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return found?.value ?? 0;
}

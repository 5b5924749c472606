/**
 * The BullMQ backend's Prometheus metrics, registered on whichever registry the shipper
 * serves (not prom-client's global one, so several backends in one process — tests — do
 * not collide). No app label: the per-app counts belong to the shipper's own metrics, and
 * a label per app here would only duplicate them.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** Why a write failed: the connection was down (nothing sent), or Redis refused or timed out. */
export type BullmqFailureReason = 'unavailable' | 'error';

export interface BullmqMetrics {
  readonly jobsAdded: Counter;
  readonly linesAdded: Counter;
  readonly addSeconds: Histogram;
  readonly addFailures: Counter<'reason'>;
}

export function registerBullmqMetrics(registry: Registry): BullmqMetrics {
  const registers = [registry];
  return {
    jobsAdded: new Counter({
      name: 'log_shipper_bullmq_jobs_added_total',
      help: 'Jobs added to the log queue (one per app per batch).',
      registers,
    }),
    linesAdded: new Counter({
      name: 'log_shipper_bullmq_lines_added_total',
      help: 'Access-log lines added to the log queue.',
      registers,
    }),
    addSeconds: new Histogram({
      name: 'log_shipper_bullmq_add_seconds',
      help: 'Duration of one addBulk (all the jobs of one batch), failed ones included.',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    addFailures: new Counter({
      name: 'log_shipper_bullmq_add_failures_total',
      help: 'Batches the log queue did not take, by reason: unavailable (connection down, nothing sent) or error (Redis refused or timed out).',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

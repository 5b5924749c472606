/**
 * The control plane's Prometheus metrics, on a registry of its own (not prom-client's global
 * one) so several instances in one process — tests — do not collide.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControlPlaneMetrics {
  readonly registry = new Registry();

  /** outcome: applied, duplicate, or the error code; both labels come from closed sets. */
  readonly events = new Counter({
    name: 'control_plane_events_total',
    help: 'Platform events received, by type and outcome (applied, duplicate, or error code).',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly applySeconds = new Histogram({
    name: 'control_plane_event_apply_seconds',
    help: 'Time from a validated event to its atomic write (including retries), by type.',
    labelNames: ['type'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  readonly applyConflicts = new Counter({
    name: 'control_plane_apply_conflicts_total',
    help: 'Applies retried because the app changed between read and write (concurrent writers).',
    registers: [this.registry],
  });

  readonly redisErrors = new Counter({
    name: 'control_plane_redis_errors_total',
    help: 'Redis commands that failed (connection lost, timeout).',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: 'control_plane_auth_failures_total',
    help: 'Requests refused for missing or bad credentials, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}

/**
 * Access-log shipping metrics, registered on the router's registry so the cluster primary
 * aggregates them like the others: counters are summed over workers, the spool gauge is
 * summed (memory held by the whole router), the connection gauge is the minimum (0 as soon
 * as one worker is cut off).
 */
import { Counter, Gauge } from 'prom-client';
import type { AckStatus } from '../../../proto/log-batch.js';
import type { RouterMetrics } from '../metrics.js';

/** Why lines were lost: spool_full (shipper down too long), refused (MALFORMED or TOO_LARGE ack), shutdown (not acked in time), write_failed (stdout). */
export type DropReason = 'spool_full' | 'refused' | 'shutdown' | 'write_failed';

const ACK_STATUS_NAMES = ['ok', 'malformed', 'too_large', 'unavailable'] as const;

export class AccessLogMetrics {
  readonly lines: Counter;
  readonly shippedLines: Counter;
  readonly shippedBatches: Counter;
  readonly shippedBytes: Counter;
  readonly acks: Counter<'status'>;
  readonly spoolBytes: Gauge;
  readonly dropped: Counter<'app' | 'reason'>;
  readonly retransmitted: Counter;
  readonly shipperUp: Gauge;
  readonly reconnects: Counter;

  constructor(private readonly router: RouterMetrics) {
    const registers = [router.registry];
    this.lines = new Counter({
      name: 'router_access_log_lines_total',
      help: 'Access-log lines produced (one per request or WebSocket session), counted when cut into a batch.',
      registers,
    });
    this.shippedLines = new Counter({
      name: 'router_access_log_shipped_lines_total',
      help: 'Access-log lines delivered: acknowledged OK by the log-shipper, or written to stdout.',
      registers,
    });
    this.shippedBatches = new Counter({
      name: 'router_access_log_shipped_batches_total',
      help: 'Access-log batches delivered: acknowledged OK by the log-shipper, or written to stdout.',
      registers,
    });
    this.shippedBytes = new Counter({
      name: 'router_access_log_shipped_bytes_total',
      help: 'Bytes of access-log batches delivered (BATCH frames acknowledged OK, or NDJSON written to stdout).',
      registers,
    });
    this.acks = new Counter({
      name: 'router_access_log_acks_total',
      help: 'Acknowledgements from the log-shipper, by status: ok, unavailable (sent again later), malformed and too_large (dropped: a router bug).',
      labelNames: ['status'] as const,
      registers,
    });
    this.spoolBytes = new Gauge({
      name: 'router_access_log_spool_bytes',
      help: 'Bytes of access-log batches not yet acknowledged or written (in flight and waiting), bounded by LOG_SPOOL_BYTES per worker (summed across workers).',
      registers,
    });
    this.dropped = new Counter({
      name: 'router_access_log_lines_dropped_total',
      help: 'Access-log lines lost, by app and reason: spool_full, refused, shutdown, write_failed.',
      labelNames: ['app', 'reason'] as const,
      registers,
    });
    this.retransmitted = new Counter({
      name: 'router_access_log_retransmitted_batches_total',
      help: 'Batches sent again after a connection loss left them unacknowledged: each may be a duplicate at the shipper.',
      registers,
    });
    this.shipperUp = new Gauge({
      name: 'router_access_log_shipper_up',
      help: '1 while the connection to the log-shipper is established (min across workers; always 0 when LOG_SHIPPER_URL is unset).',
      aggregator: 'min',
      registers,
    });
    this.reconnects = new Counter({
      name: 'router_access_log_reconnects_total',
      help: 'Connection attempts to the log-shipper after the first one.',
      registers,
    });
  }

  ack(status: AckStatus): void {
    this.acks.inc({ status: ACK_STATUS_NAMES[status] });
  }

  /** The app label, folded into "_other" past ROUTER_METRICS_MAX_APPS like every app label; '-' (no app) is kept. */
  appLabel(app: string): string {
    return app === '-' ? app : this.router.appLabel(app);
  }
}

/**
 * The shipper's Prometheus metrics, one registry (served on /metrics with the default
 * process metrics). Labels are closed sets (statuses, reasons, backend names): no app name
 * ever becomes a label, so a platform with 100 000 apps keeps a small /metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const WRITE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export type AckLabel = 'ok' | 'malformed' | 'too_large' | 'unavailable';

export class ShipperMetrics {
  readonly registry = new Registry();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  readonly batchesReceived = new Counter({
    name: 'log_shipper_batches_received_total',
    help: 'BATCH frames received from routers (duplicates and refused ones included).',
    registers: [this.registry],
  });

  readonly bytesReceived = new Counter({
    name: 'log_shipper_bytes_received_total',
    help: 'Bytes of BATCH bodies received (oversized ones included, as announced).',
    registers: [this.registry],
  });

  /** result: accepted, rejected (not one JSON object per line; not written). */
  readonly linesReceived = new Counter({
    name: 'log_shipper_lines_received_total',
    help: 'Lines in the batches that were decoded, by result: accepted, rejected.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  /** reason: malformed, too_large, unavailable. */
  readonly batchesRefused = new Counter({
    name: 'log_shipper_batches_refused_total',
    help: 'Batches not acknowledged OK, by reason: malformed, too_large, unavailable (a backend failed; the router resends).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly acks = new Counter({
    name: 'log_shipper_acks_total',
    help: 'ACK frames sent, by status: ok, malformed, too_large, unavailable.',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly duplicates = new Counter({
    name: 'log_shipper_duplicates_suppressed_total',
    help: 'Batches acknowledged OK without being written again: their router had a seq at or below it acknowledged already (a resend after a lost ack).',
    registers: [this.registry],
  });

  readonly routerConnections = new Gauge({
    name: 'log_shipper_router_connections',
    help: 'Router connections open (after the protocol magic).',
    registers: [this.registry],
  });

  readonly routerConnectionsTotal = new Counter({
    name: 'log_shipper_router_connections_total',
    help: 'Router connections accepted (after the protocol magic).',
    registers: [this.registry],
  });

  /** kind: router, http; reason: bad_token, missing, hello_timeout, bad_hello. */
  readonly authFailures = new Counter({
    name: 'log_shipper_auth_failures_total',
    help: 'Refused credentials, by kind (router HELLO, http bearer) and reason: bad_token, missing, hello_timeout, bad_hello.',
    labelNames: ['kind', 'reason'] as const,
    registers: [this.registry],
  });

  readonly protocolErrors = new Counter({
    name: 'log_shipper_protocol_errors_total',
    help: 'Router connections closed with an ERROR frame for breaking the protocol (unexpected or unknown frame, oversized control frame).',
    registers: [this.registry],
  });

  readonly backendBatches = new Counter({
    name: 'log_shipper_backend_batches_total',
    help: 'Batches a backend resolved, by backend.',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  readonly backendLines = new Counter({
    name: 'log_shipper_backend_lines_total',
    help: 'Lines a backend resolved, by backend.',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  readonly backendBytes = new Counter({
    name: 'log_shipper_backend_bytes_total',
    help: 'Bytes of lines a backend resolved, by backend.',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  readonly backendFailures = new Counter({
    name: 'log_shipper_backend_failures_total',
    help: 'Backend writes that rejected (the batch was acknowledged UNAVAILABLE), by backend.',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  readonly backendSeconds = new Histogram({
    name: 'log_shipper_backend_write_seconds',
    help: 'From a batch handed to a backend to its write resolving or rejecting, by backend.',
    labelNames: ['backend'] as const,
    buckets: WRITE_BUCKETS,
    registers: [this.registry],
  });

  // The file backend's own figures.
  readonly fileWrites = new Counter({
    name: 'log_shipper_file_writes_total',
    help: 'write(2)/writev(2) calls to log files: at most one per app per batch (fewer when batches for one app queue up and are written together).',
    registers: [this.registry],
  });

  readonly fileLines = new Counter({
    name: 'log_shipper_file_lines_written_total',
    help: 'Lines written to log files.',
    registers: [this.registry],
  });

  readonly fileBytes = new Counter({
    name: 'log_shipper_file_bytes_written_total',
    help: 'Bytes written to log files.',
    registers: [this.registry],
  });

  readonly fileBatches = new Counter({
    name: 'log_shipper_file_batches_written_total',
    help: 'Per-app chunks of batches written to log files.',
    registers: [this.registry],
  });

  readonly fileWriteSeconds = new Histogram({
    name: 'log_shipper_file_write_seconds',
    help: 'Duration of each write call to a log file (plus its fdatasync with LOG_FSYNC=always).',
    buckets: WRITE_BUCKETS,
    registers: [this.registry],
  });

  readonly openFiles = new Gauge({
    name: 'log_shipper_open_files',
    help: 'Log files open now (at most LOG_MAX_OPEN_FILES).',
    registers: [this.registry],
  });

  readonly fileReopens = new Counter({
    name: 'log_shipper_file_reopens_total',
    help: 'Reopens of every log file (SIGHUP).',
    registers: [this.registry],
  });

  readonly fileRotations = new Counter({
    name: 'log_shipper_file_rotations_total',
    help: 'Size rotations (router.log renamed router.log.1) past LOG_ROTATE_BYTES.',
    registers: [this.registry],
  });

  readonly fileErrors = new Counter({
    name: 'log_shipper_file_write_errors_total',
    help: 'Failed opens, writes, rotations or fdatasyncs of log files (by operation).',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  readonly fsyncs = new Counter({
    name: 'log_shipper_file_fsyncs_total',
    help: 'fdatasync calls on log files.',
    registers: [this.registry],
  });

  readonly filesystemSyncs = new Counter({
    name: 'log_shipper_filesystem_syncs_total',
    help: 'syncfs calls on LOG_DIR\'s filesystem (LOG_FSYNC=interval with many files dirty, or evicted files written since the last).',
    registers: [this.registry],
  });

  readonly pageCacheDrops = new Counter({
    name: 'log_shipper_page_cache_drops_total',
    help: 'posix_fadvise(DONTNEED) calls letting go of the cached pages of synced log data (LOG_FSYNC=interval or always).',
    registers: [this.registry],
  });

  // Live tails.
  readonly tailSubscribers = new Gauge({
    name: 'log_shipper_tail_subscribers',
    help: 'Tail clients following an app now.',
    registers: [this.registry],
  });

  readonly tailLinesDropped = new Counter({
    name: 'log_shipper_tail_lines_dropped_total',
    help: 'Lines not sent to a tail client that read too slowly (it was told how many).',
    registers: [this.registry],
  });
}

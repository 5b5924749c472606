/**
 * The router's Prometheus metrics, one registry per worker. Under node:cluster the primary
 * aggregates the workers' registries (prom-client's AggregatorRegistry): counters and
 * histograms are summed, gauges say how they combine (`aggregator`).
 *
 * App names become labels only for the first `maxApps` apps seen by this worker; the rest
 * share the label `_other`, so 100 000 apps cannot blow up /metrics.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BucketHistogram } from './hot-metrics.js';

export const OTHER_APP = '_other';

export class RouterMetrics {
  readonly registry = new Registry();
  private readonly labelledApps = new Set<string>();

  constructor(private readonly maxApps: number) {
    collectDefaultMetrics({ register: this.registry });
  }

  /** The label to use for `app`: itself while the label budget lasts, then `_other`. */
  appLabel(app: string): string {
    if (this.labelledApps.has(app)) return app;
    if (this.labelledApps.size < this.maxApps) {
      this.labelledApps.add(app);
      return app;
    }
    return OTHER_APP;
  }

  /** status class: 2xx, 3xx, 4xx, 5xx; code: a router error code, or "-" for an app's own answer. */
  readonly requests = new Counter({
    name: 'router_requests_total',
    help: 'Requests answered, by app, status class and router error code ("-" when the app answered).',
    labelNames: ['app', 'class', 'code'] as const,
    registers: [this.registry],
  });

  /** protocol: http/1.1, h2. */
  readonly requestsByProtocol = new Counter({
    name: 'router_requests_by_protocol_total',
    help: 'HTTP requests answered (WebSocket sessions apart), by the client protocol: http/1.1, h2.',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });

  /** Written by RequestMetrics through cells (hot-metrics.ts), not through prom-client per request. */
  readonly requestSeconds = new BucketHistogram(
    'router_request_duration_seconds',
    'From the request reaching the router to the response headers sent back, by status class.',
    'class',
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    this.registry,
  );

  readonly upstreamErrors = new Counter({
    name: 'router_upstream_errors_total',
    help: 'Failed attempts to reach a container (refused, timeout, reset), by router error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly retries = new Counter({
    name: 'router_upstream_retries_total',
    help: 'Requests sent to another container after one refused the connection before anything was sent.',
    registers: [this.registry],
  });

  readonly ejections = new Counter({
    name: 'router_container_ejections_total',
    help: 'Containers skipped for a while after refusing or timing out a connection.',
    registers: [this.registry],
  });

  /** result: hit, stale (served while refreshing or because Redis failed), negative (known unknown), miss. */
  readonly cache = new Counter({
    name: 'router_route_cache_total',
    help: 'Route cache lookups by result: hit, negative, stale, miss.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  /** outcome: found, not_found, error. */
  readonly redisLookups = new Counter({
    name: 'router_redis_lookups_total',
    help: 'Route lookups that went to Redis, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly refreshAhead = new Counter({
    name: 'router_route_refresh_ahead_total',
    help: 'Invalidated routes re-read at once, before any request asked for them (their Redis answers count in router_redis_lookups_total).',
    registers: [this.registry],
  });

  /** result: applied, ignored, flush, malformed. */
  readonly invalidations = new Counter({
    name: 'router_invalidations_total',
    help: 'Invalidation messages received, by what they caused: applied (named keys dropped), ignored (old), flush (gap or resubscribe), malformed (unreadable: flushed too).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly configVersion = new Gauge({
    name: 'router_config_version',
    help: 'Last global config version applied from the invalidation channel (min across workers).',
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly configVersionLag = new Gauge({
    name: 'router_config_version_lag',
    help: 'Versions between the control plane\'s current config version and the last one applied, read at each fleet heartbeat (max across workers).',
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly secondsSinceMessage = new Gauge({
    name: 'router_invalidation_silence_seconds',
    help: 'Seconds since the last invalidation message or subscriber ping reply (max across workers).',
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly subscriberUp = new Gauge({
    name: 'router_subscriber_up',
    help: '1 while the invalidation subscriber is subscribed (min across workers).',
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly websocketsOpen = new Gauge({
    name: 'router_websockets_open',
    help: 'WebSocket sessions open.',
    registers: [this.registry],
  });

  readonly inflight = new Gauge({
    name: 'router_inflight_requests',
    help: 'Requests in flight, by app.',
    labelNames: ['app'] as const,
    registers: [this.registry],
  });

  /** outcome: ok, error (refused, malformed, or cut before it completed). */
  readonly tlsHandshakes = new Counter({
    name: 'router_tls_handshakes_total',
    help: 'TLS handshakes on the HTTPS listener, by outcome: ok, error.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  /** protocol: h2, http/1.1, none (the client offered no ALPN: served as HTTP/1.1). */
  readonly tlsAlpn = new Counter({
    name: 'router_tls_alpn_total',
    help: 'TLS connections by the protocol ALPN selected: h2, http/1.1, none (no ALPN offered: HTTP/1.1).',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });

  readonly http1Handovers = new Counter({
    name: 'router_http1_handovers_total',
    help: 'HTTP/1.1 connections the router\'s own HTTP/1.1 path handed to node:http, by the request that did not fit: body (an upload), upgrade (WebSocket), expect (100-continue), version (not HTTP/1.1), malformed (a parse error, answered 400/431 by node:http).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly h2Sessions = new Gauge({
    name: 'router_h2_sessions_open',
    help: 'HTTP/2 connections (sessions) open on the HTTPS listener.',
    registers: [this.registry],
  });

  readonly tlsResumed = new Counter({
    name: 'router_tls_resumed_total',
    help: 'TLS handshakes that resumed a session (a ticket issued by any worker of any router under the current shared key); divide by router_tls_handshakes_total{outcome="ok"} for the ratio.',
    registers: [this.registry],
  });

  readonly tlsTicketKeyEpoch = new Gauge({
    name: 'router_tls_ticket_key_epoch',
    help: 'Epoch (Unix time / TLS_TICKET_KEY_ROTATE) of the session ticket key in use (min across workers: a worker that did not switch shows).',
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly tlsTicketKeyShared = new Gauge({
    name: 'router_tls_ticket_key_shared',
    help: '1 when the session ticket key in use is the fleet\'s (from Redis), 0 when it is a process-local fallback (min across workers).',
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly tlsTicketKeyFailures = new Counter({
    name: 'router_tls_ticket_key_fetch_failures_total',
    help: 'Attempts to read or create the shared session ticket key in Redis that failed (Redis unreachable, or a record that does not open).',
    registers: [this.registry],
  });

  /** result: hit, miss, negative (known to have no certificate). */
  readonly certCache = new Counter({
    name: 'router_cert_cache_total',
    help: 'Certificate cache lookups by SNI name, by result: hit, miss, negative.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  /** outcome: found, not_found, error. */
  readonly certLookups = new Counter({
    name: 'router_cert_lookups_total',
    help: 'SNI lookups that went to Redis (one MGET each), by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly certExpiryDays = new Gauge({
    name: 'router_cert_expiry_days',
    help: 'Days until each cached certificate expires, by stored domain (min across workers; bounded by CERT_CACHE_MAX).',
    labelNames: ['domain'] as const,
    aggregator: 'min',
    registers: [this.registry],
    // Recomputed at each scrape: a value set when the certificate was loaded would freeze while it sits in the cache.
    collect: () => this.certExpirySource?.(),
  });

  /** Set by the certificate cache: refreshes certExpiryDays from what it holds. */
  certExpirySource: (() => void) | undefined = undefined;

  readonly cacheSize = new Gauge({
    name: 'router_route_cache_entries',
    help: 'Entries in the route cache (summed across workers).',
    registers: [this.registry],
  });
}

export function statusClass(status: number): string {
  if (status < 200) return '1xx';
  if (status < 300) return '2xx';
  if (status < 400) return '3xx';
  if (status < 500) return '4xx';
  return '5xx';
}

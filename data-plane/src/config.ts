/**
 * The router's environment, declared once (see proto/config/env.ts).
 */
import os from 'node:os';
import { ConfigError, InvalidValue, loadConfig, optional, parse, withDefault, type ConfigOf } from '../../proto/config/env.js';
import { MAX_BATCH_BYTES } from '../../proto/log-batch.js';
import { sharedProblems, sharedVariables } from '../../proto/config/shared.js';

/** `tcp://host:port` or a bare `host:port` (IPv6 in brackets). */
function shipperAddress(raw: string): { host: string; port: number } {
  const rest = raw.trim().replace(/^tcp:\/\//i, '');
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:/\s\[\]]+):([0-9]{1,5})\/?$/.exec(rest);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new InvalidValue('must be tcp://host:port or host:port');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

const ms = (name: string, description: string, fallback: number, max = 3_600_000) => withDefault(name, `${description} (milliseconds)`, parse.integer(1, max), fallback);

export const routerVariables = {
  ...sharedVariables,
  host: withDefault('ROUTER_HOST', 'Address of the public HTTP listener.', parse.string, '0.0.0.0'),
  httpPort: withDefault('ROUTER_HTTP_PORT', 'Public HTTP port.', parse.port, 8080),
  httpsPort: withDefault('ROUTER_HTTPS_PORT', 'Public HTTPS port, as clients reach it: force_https redirects there (no port in the URL when 443).', parse.integer(1, 65535), 8443),
  adminHost: withDefault('ROUTER_ADMIN_HOST', 'Address of the admin listener (/metrics, /healthz, /readyz); keep it private.', parse.string, '127.0.0.1'),
  adminPort: withDefault('ROUTER_ADMIN_PORT', 'Admin port.', parse.port, 9090),
  accept: withDefault('ROUTER_ACCEPT', 'Who accepts connections: round-robin = the primary, handing each to the workers in turn (even spread); kernel = the workers themselves (about 1.7x more new connections per second measured, but the kernel may favour one worker).', parse.oneOf<'round-robin' | 'kernel'>('round-robin', 'kernel'), 'round-robin' as 'round-robin' | 'kernel'),
  workers: withDefault('ROUTER_WORKERS', 'Worker processes (node:cluster); 0 = one per core; 1 = no cluster.', parse.integer(0, 256), 0),
  semiSpaceMb: withDefault(
    'ROUTER_SEMI_SPACE_MB',
    "Largest V8 young-generation semi-space of each worker (MiB; node's --max-semi-space-size, the young generation grows to 3x it under load). Each proxied request leaves a few KiB of short-lived objects: a larger young generation collects them less often (router CPU per request, median of 3 runs: 51 us at 16, 44 us at 64). 0: V8's default (16). Applied to the workers the primary forks; with ROUTER_WORKERS=1, pass --max-semi-space-size in NODE_OPTIONS instead. A --max-semi-space-size already in node's flags or NODE_OPTIONS wins.",
    parse.integer(0, 1024),
    64,
  ),
  cacheMax: withDefault('ROUTE_CACHE_MAX', 'Hostnames cached per worker.', parse.integer(1, 10_000_000), 10_000),
  cacheTtlMs: ms('ROUTE_CACHE_TTL', 'Safety-net TTL: older entries are refreshed in the background while still served', 60_000),
  negativeTtlMs: ms('ROUTE_NEGATIVE_TTL', 'How long an unknown hostname is remembered as unknown', 5_000),
  maxStalenessMs: ms('ROUTER_MAX_STALENESS', '/readyz fails when no invalidation message or ping arrived for this long', 10_000),
  firstByteTimeoutMs: ms('ROUTER_FIRST_BYTE_TIMEOUT', 'Response headers must arrive within this time, else 504', 30_000),
  idleTimeoutMs: ms('ROUTER_IDLE_TIMEOUT', 'A request with no bytes either way for this long is closed', 55_000),
  wsIdleTimeoutMs: ms('ROUTER_WS_IDLE_TIMEOUT', 'A WebSocket with no traffic either way for this long is closed', 60_000),
  keepAliveTimeoutMs: ms('ROUTER_KEEPALIVE_TIMEOUT', 'An idle client connection between two requests is kept this long (nginx: 75 s); keep it above the idle timeout of any load balancer in front', 75_000),
  headersTimeoutMs: ms('ROUTER_HEADERS_TIMEOUT', 'A client must send its request headers within this time (slowloris)', 10_000),
  maxInflightPerApp: withDefault('ROUTER_MAX_INFLIGHT_PER_APP', 'Requests in flight per app on this router before 503 BACKLOG_TOO_DEEP (each worker enforces its share).', parse.integer(1, 1_000_000), 1000),
  heartbeatIntervalMs: ms('ROUTER_HEARTBEAT_INTERVAL', 'How often each worker writes its fleet-view record (GET /v1/routers); a router silent for 3 intervals disappears from it', 5_000, 600_000),
  drainTimeoutMs: ms('ROUTER_DRAIN_TIMEOUT', 'On SIGTERM, how long in-flight requests and WebSockets may finish', 30_000),
  ejectMs: ms('ROUTER_EJECT_TIME', 'How long a container that refused or timed out a connection is skipped', 10_000),
  connectTimeoutMs: ms('ROUTER_CONNECT_TIMEOUT', 'TCP connect timeout to a container', 5_000),
  upstreamConnections: withDefault('ROUTER_UPSTREAM_CONNECTIONS', 'Keep-alive connections per container per worker.', parse.integer(1, 10_000), 128),
  metricsMaxApps: withDefault('ROUTER_METRICS_MAX_APPS', 'Apps with their own metric labels; the rest are counted as "_other".', parse.integer(1, 100_000), 500),
  certCacheMax: withDefault('CERT_CACHE_MAX', 'TLS certificates (built SecureContexts) cached per worker, by SNI name; unknown names are cached apart, as many.', parse.integer(1, 1_000_000), 1000),
  certNegativeTtlMs: ms('CERT_NEGATIVE_TTL', 'How long an SNI name with no certificate is remembered as such', 5_000),
  http1FastPath: withDefault('ROUTER_HTTP1_FAST_PATH', 'Serve HTTP/1.1 requests without a body (plain HTTP, and HTTPS connections that chose HTTP/1.1) on the router\'s own HTTP/1.1 path (llhttp, no node:http objects per request; about 1.4x the requests per CPU second measured); anything else (uploads, WebSocket upgrades, Expect, HTTP/1.0, parse errors) is handed to node:http with its connection. false: node:http for everything.', parse.boolean, true),
  http2: withDefault('ROUTER_HTTP2', 'Offer HTTP/2 (ALPN h2) on the HTTPS listener, next to HTTP/1.1; false: HTTP/1.1 only.', parse.boolean, true),
  http2MaxStreams: withDefault('ROUTER_HTTP2_MAX_STREAMS', 'Concurrent streams (requests) per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused.', parse.integer(1, 10_000), 128),
  defaultCertFile: optional('ROUTER_DEFAULT_CERT', 'Path of the PEM chain served for unknown SNI names and clients without SNI (with ROUTER_DEFAULT_KEY). Unset: a self-signed certificate generated at start.', parse.string),
  defaultKeyFile: optional('ROUTER_DEFAULT_KEY', 'Path of the PEM private key of ROUTER_DEFAULT_CERT.', parse.string),
  platformCertFile: optional('ROUTER_PLATFORM_CERT', 'Path of the PEM chain of the *.<PLATFORM_DOMAIN> wildcard certificate served for <app>.<PLATFORM_DOMAIN> (with ROUTER_PLATFORM_KEY). Unset: those names get the default certificate.', parse.string),
  platformKeyFile: optional('ROUTER_PLATFORM_KEY', 'Path of the PEM private key of ROUTER_PLATFORM_CERT.', parse.string),
  ticketKeyRotateMs: withDefault(
    'TLS_TICKET_KEY_ROTATE',
    'Lifetime of the TLS session ticket key shared by every router through Redis (milliseconds): all routers switch to a new key at the same multiples of it since the Unix epoch, and sessions issued under the previous key then need one full handshake.',
    parse.integer(1000, 604_800_000),
    43_200_000,
  ),
  logShipper: optional('LOG_SHIPPER_URL', 'Where access-log batches go: the log-shipper as tcp://host:port (or host:port). Unset or empty: NDJSON lines on stdout.', shipperAddress),
  logShipperToken: optional('LOG_SHIPPER_TOKEN', 'Token the log-shipper expects from routers (required with LOG_SHIPPER_URL).', parse.string, { secret: true }),
  logBatchBytes: withDefault('LOG_BATCH_BYTES', 'An access-log batch is sent when it reaches this size (bytes, 1 KiB to 1 MiB).', parse.integer(1024, MAX_BATCH_BYTES), 65_536),
  logBatchMs: ms('LOG_BATCH_MS', 'An access-log batch is sent at the latest this long after its first line', 200, 60_000),
  logSpoolBytes: withDefault('LOG_SPOOL_BYTES', 'Access-log bytes held per worker while not yet acknowledged (or written); beyond it the oldest batches are dropped and counted.', parse.integer(1024, 2 ** 40), 64 * 1024 * 1024),
};

export type RouterConfig = ConfigOf<typeof routerVariables>;

export function loadRouterConfig(env: NodeJS.ProcessEnv = process.env): RouterConfig {
  const config = loadConfig(routerVariables, env);
  const problems = sharedProblems(config);
  // A certificate without its key (or the reverse) is a typo, not a choice: refuse to start.
  if ((config.defaultCertFile === undefined) !== (config.defaultKeyFile === undefined)) problems.push('ROUTER_DEFAULT_CERT and ROUTER_DEFAULT_KEY: set both or neither');
  if ((config.platformCertFile === undefined) !== (config.platformKeyFile === undefined)) problems.push('ROUTER_PLATFORM_CERT and ROUTER_PLATFORM_KEY: set both or neither');
  if (config.logShipper !== undefined && config.logShipperToken === undefined) problems.push('LOG_SHIPPER_URL is set without LOG_SHIPPER_TOKEN: set the token the log-shipper expects');
  if (config.logSpoolBytes < config.logBatchBytes) problems.push('LOG_SPOOL_BYTES must be at least LOG_BATCH_BYTES');
  if (problems.length > 0) throw new ConfigError(problems);
  if (config.workers === 0) config.workers = os.availableParallelism();
  return config;
}

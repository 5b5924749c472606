/**
 * What the request and WebSocket paths share within one server: dependencies, per-worker
 * state (balancer, pools, backlog) and the sets of live exchanges and tunnels that drain,
 * close and the idle sweep walk.
 */
import type { Logger } from 'pino';
import type { AcmeResponder } from '../acme/acme-responder.js';
import type { RouterConfig } from '../config.js';
import { ROUTER_ERRORS, type RouterErrorCode } from '../errors.js';
import type { RouterMetrics } from '../metrics.js';
import { StoreUnavailableError, type RouteLookup } from '../routing/route-lookup.js';
import type { AccessLogSink } from './access-log.js';
import type { Backlog } from './backlog.js';
import type { Balancer } from './balancer.js';
import type { Forwarding } from './headers.js';
import type { RequestMetrics } from './request-metrics.js';
import type { UpstreamPools } from './upstream-pools.js';

/** An HTTP request being proxied. */
export interface LiveExchange {
  /** Body bytes moved so far, both ways: the idle sweep compares it between sweeps. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  lastActivity: number;
  idleSince: number;
  idleTimeout(): void;
  /** Drain deadline or close: answer 503 DRAINING if nothing was sent yet, else cut. */
  shutdown(): void;
}

/** An open WebSocket tunnel. */
export interface LiveTunnel {
  /** Drain deadline (graceMs > 0: close frame 1001, then cut after graceMs) or close (0: cut now). */
  shutdown(graceMs?: number): void;
}

export interface ProxyContext {
  readonly routes: RouteLookup;
  readonly config: RouterConfig;
  readonly metrics: RouterMetrics;
  readonly requestMetrics: RequestMetrics;
  readonly accessLog: AccessLogSink;
  readonly log: Logger;
  readonly balancer: Balancer;
  readonly pools: UpstreamPools;
  readonly backlog: Backlog;
  readonly forwarding: Forwarding;
  readonly exchanges: Set<LiveExchange>;
  readonly tunnels: Set<LiveTunnel>;
  /** Answers ACME HTTP-01 challenges before routing; absent: those paths are routed like any other. */
  readonly acme: AcmeResponder | undefined;
  draining: boolean;
}

/** The code for a failed route lookup: a store outage, or a bug we still answer as one. */
export function lookupFailureCode(ctx: ProxyContext, err: unknown): RouterErrorCode {
  if (!(err instanceof StoreUnavailableError)) ctx.log.error({ err }, 'route lookup failed unexpectedly');
  return 'STORE_UNAVAILABLE';
}

/** A sink that throws must not take the request path down with it. */
export function emitAccessLine(ctx: ProxyContext, line: Parameters<AccessLogSink>[0]): void {
  try {
    ctx.accessLog(line);
  } catch (err) {
    ctx.log.error({ err }, 'access log sink failed');
  }
}

export function statusOf(code: RouterErrorCode): number {
  return ROUTER_ERRORS[code].status;
}

/**
 * The router's public listeners, plain HTTP/1.1 and HTTPS (HTTP/1.1 and, by ALPN, HTTP/2:
 * h2-listener.ts): every request and Upgrade is proxied to a container of the app its Host
 * names (proxy/), or answered by the router itself with a stable error code. HTTP/1.1
 * requests without a body take the router's own path (h1-listener.ts); node:http serves the
 * connections it hands over, with the options below.
 *
 * Timeouts: `headersTimeout` closes slowloris clients (Node checks it every
 * `connectionsCheckingInterval`); `requestTimeout` is off, so a long upload is never cut
 * while bytes move; the idle sweep closes a request with no body bytes either way for
 * idleTimeoutMs; undici's per-request headersTimeout is the first-byte timeout.
 */
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import type { TLSSocket, TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { AcmeResponder } from './acme/acme-responder.js';
import type { RouterConfig } from './config.js';
import { H1Listener, plainListener } from './h1-listener.js';
import { attachHttp2, takeSecureConnection, type H2Listener } from './h2-listener.js';
import type { RouterMetrics } from './metrics.js';
import type { RouteLookup } from './routing/route-lookup.js';
import type { AccessLogLine } from './proxy/access-log.js';
import { Backlog } from './proxy/backlog.js';
import { Balancer } from './proxy/balancer.js';
import { onClientError } from './proxy/client-errors.js';
import type { ProxyContext } from './proxy/context.js';
import { proxyRequest, sweepIdle } from './proxy/http-proxy.js';
import { RequestMetrics } from './proxy/request-metrics.js';
import { UpstreamPools } from './proxy/upstream-pools.js';
import { proxyUpgrade } from './proxy/websocket-proxy.js';

export interface RouterServerDeps {
  routes: RouteLookup;
  metrics: RouterMetrics;
  config: RouterConfig;
  accessLog: (line: AccessLogLine) => void;
  log: Logger;
  /** In `Via: 1.1 <routerName>`; default `platform-router`. */
  routerName?: string;
  /** X-Forwarded-Proto sent upstream; the TLS listener passes 'https'. Default 'http'. */
  forwardedProto?: 'http' | 'https';
  /** Answers `/.well-known/acme-challenge/<token>` for any Host; the plain-HTTP listener gets one. */
  acme?: AcmeResponder;
  /**
   * Makes this the HTTPS listener (tls/certificates.ts builds the options: SNI callback,
   * default certificate, TLS 1.2+). Implies `forwardedProto: 'https'`. Requests are proxied
   * exactly as on the plain listener; only the handshake is added in front, and with
   * ROUTER_HTTP2 the ALPN choice of HTTP/2.
   */
  tls?: TlsOptions;
  /**
   * Balancer, pools, backlog and request metrics shared with the router's other listener, so
   * ejections, in-flight counts and the per-app limit are the router's, not one listener's.
   * The owner (router.ts) then closes the pools; without it this server owns its own.
   */
  shared?: SharedProxyState;
}

export interface SharedProxyState {
  balancer: Balancer;
  pools: UpstreamPools;
  backlog: Backlog;
  requestMetrics: RequestMetrics;
}

export function createSharedProxyState(config: RouterConfig, metrics: RouterMetrics): SharedProxyState {
  return {
    balancer: new Balancer(config.cacheMax, config.ejectMs),
    pools: new UpstreamPools({ connections: config.upstreamConnections, connectTimeoutMs: config.connectTimeoutMs }),
    backlog: new Backlog(config.maxInflightPerApp),
    requestMetrics: RequestMetrics.of(metrics),
  };
}

export interface RouterServer {
  /** The listening server: the https.Server, node:http's server, or the HTTP/1.1 fast path's net.Server. */
  server: net.Server;
  /** Resolves with the bound port (useful with port 0), which also becomes X-Forwarded-Port. */
  listen(host: string, port: number): Promise<number>;
  /**
   * Stop accepting, let in-flight requests finish up to `timeoutMs` (their responses carry
   * `Connection: close`), close idle keep-alive sockets, then close upstream pools. At the
   * deadline what is left is ended: requests without response headers get 503 DRAINING,
   * the rest and every WebSocket are cut. WebSockets are not waited for otherwise, so a
   * router with open WebSockets drains for the whole `timeoutMs`. New upgrades get 503.
   * HTTP/2 sessions get GOAWAY at once: their streams in flight finish, no new one opens.
   */
  drain(timeoutMs: number): Promise<void>;
  /** Ends everything now (as drain's deadline does) and releases the pools. */
  close(): Promise<void>;
  stats(): { inflight: number; websockets: number };
  /** TLS handshakes completed and resumed on this listener (zeros on a plain one). */
  handshakes(): { handshakes: number; resumed: number };
}

/** Handshakes of this listener, for /readyz's per-worker detail (metrics are summed across workers). */
interface HandshakeCounts {
  handshakes: number;
  resumed: number;
}

/**
 * The HTTPS variant: same HTTP/1.1 handling, HTTP/2 for clients that choose it by ALPN,
 * plus handshake metrics (not per request). The ALPN list is this listener's to set (it
 * knows what it speaks): h2 first, so clients offering both get it.
 */
function createTlsServer(deps: RouterServerDeps, httpOptions: http.ServerOptions, tls: TlsOptions, ctx: ProxyContext, counts: HandshakeCounts): { server: https.Server; h2: H2Listener | null; h1: H1Listener | null } {
  const server = https.createServer({ ...tls, ...httpOptions, ALPNProtocols: deps.config.http2 ? ['h2', 'http/1.1'] : ['http/1.1'] });
  // First, while node:http's connection listener is still the only one. After the handshake:
  // h2 → HTTP/2; HTTP/1.1 → the router's own path (node:http takes what it hands over).
  const nodeHttp1 = takeSecureConnection(server);
  const h2 = deps.config.http2 ? attachHttp2(server, ctx, deps.log) : null;
  const h1 = deps.config.http1FastPath ? new H1Listener(ctx, nodeHttp1 as (socket: net.Socket) => void) : null;
  server.on('secureConnection', (socket: TLSSocket) => {
    if (h2 !== null && socket.alpnProtocol === 'h2') h2.accept(socket);
    else if (h1 !== null) h1.adopt(socket);
    else nodeHttp1(socket);
  });
  const ok = deps.metrics.tlsHandshakes.labels('ok');
  const failed = deps.metrics.tlsHandshakes.labels('error');
  const alpnH2 = deps.metrics.tlsAlpn.labels('h2');
  const alpnHttp1 = deps.metrics.tlsAlpn.labels('http/1.1');
  const alpnNone = deps.metrics.tlsAlpn.labels('none');
  server.on('secureConnection', (socket: TLSSocket) => {
    ok.inc();
    counts.handshakes++;
    if (socket.isSessionReused()) {
      deps.metrics.tlsResumed.inc();
      counts.resumed++;
    }
    const alpn = socket.alpnProtocol;
    (alpn === 'h2' ? alpnH2 : alpn === 'http/1.1' ? alpnHttp1 : alpnNone).inc();
  });
  server.on('tlsClientError', (err: Error) => {
    failed.inc();
    // Scanners and clients that reject the default certificate do this all day: trace only.
    deps.log.trace({ err: err.message }, 'TLS handshake failed');
  });
  return { server, h2, h1 };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const clamp = (n: number, min: number, max: number): number => Math.min(max, Math.max(min, Math.floor(n)));
/** After the deadline: how long responses just written (503s) get to flush before sockets are cut. */
const FLUSH_GRACE_MS = 200;
/** After the deadline: how long a WebSocket client gets to answer the router's close frame. */
const GOING_AWAY_GRACE_MS = 2_000;

export function createRouterServer(deps: RouterServerDeps): RouterServer {
  const { config } = deps;
  const ownsPools = deps.shared === undefined;
  const shared = deps.shared ?? createSharedProxyState(config, deps.metrics);
  const ctx: ProxyContext = {
    routes: deps.routes,
    config,
    metrics: deps.metrics,
    requestMetrics: shared.requestMetrics,
    accessLog: deps.accessLog,
    log: deps.log,
    balancer: shared.balancer,
    pools: shared.pools,
    backlog: shared.backlog,
    forwarding: {
      proto: deps.tls !== undefined ? 'https' : (deps.forwardedProto ?? 'http'),
      port: '',
      via: `1.1 ${deps.routerName ?? 'platform-router'}`,
      via2: `2 ${deps.routerName ?? 'platform-router'}`,
    },
    exchanges: new Set(),
    tunnels: new Set(),
    acme: deps.acme,
    draining: false,
  };

  const httpOptions: http.ServerOptions = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: clamp(config.headersTimeoutMs / 4, 50, 1000),
    // Missing Host is answered by the proxy (400 BAD_HOST, logged), not by Node.
    requireHostHeader: false,
  };
  const counts: HandshakeCounts = { handshakes: 0, resumed: 0 };
  const tlsServer = deps.tls === undefined ? null : createTlsServer(deps, httpOptions, deps.tls, ctx, counts);
  const server = tlsServer?.server ?? http.createServer(httpOptions);
  const h2 = tlsServer?.h2 ?? null;
  // Node's default (5 s) makes clients and load balancers reconnect (a full TLS handshake) after any short pause.
  server.keepAliveTimeout = config.keepAliveTimeoutMs;
  // Every header line is kept (node:http's default drops those past 2000): the proxy forwards
  // what it was sent, and a Content-Length past the cap would otherwise be unseen and the
  // body dropped. The 16 KiB head limit still bounds them.
  server.maxHeadersCount = 0;
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => proxyRequest(ctx, req, res, false));
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => proxyRequest(ctx, req, res, true));
  server.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => proxyUpgrade(ctx, req, socket, head));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => onClientError(ctx, err, socket));
  const plain = tlsServer === null && config.http1FastPath ? plainListener(ctx, server) : null;
  const h1 = tlsServer?.h1 ?? plain?.h1 ?? null;
  const listening: net.Server = plain?.server ?? server;

  const sweep = setInterval(() => sweepIdle(ctx, performance.now()), clamp(config.idleTimeoutMs / 4, 25, 1000));
  sweep.unref();

  let closedPromise: Promise<void> | null = null;
  let allConnectionsGone = false;
  const stopAccepting = (): Promise<void> => {
    ctx.draining = true;
    // net.Server's close, not http.Server's: the latter also cuts idle keep-alive sockets at
    // once, racing a request the client may be sending on one, which then fails. Idle
    // sockets are left to the keep-alive timeout, which clients such as undici anticipate;
    // a request that still arrives on one is answered, with Connection: close.
    closedPromise ??= new Promise<void>((resolve) => net.Server.prototype.close.call(listening, () => resolve())).then(() => {
      allConnectionsGone = true;
    });
    return closedPromise;
  };

  const endEverything = async (closed: Promise<void>, goodbyeMs: number): Promise<void> => {
    for (const ex of [...ctx.exchanges]) ex.shutdown();
    for (const t of [...ctx.tunnels]) t.shutdown(goodbyeMs);
    h1?.closeIdle();
    server.closeIdleConnections();
    // HTTP/2 sessions close themselves once their last stream (a 503 just written) is flushed.
    h2?.goaway();
    await Promise.race([closed, sleep(FLUSH_GRACE_MS)]);
    h1?.closeAll();
    server.closeAllConnections();
    h2?.destroy();
    h1?.stop();
    // The never-listening node:http server behind the plain listener: its connection checks stop.
    if (plain !== null) server.close();
    // WebSockets told to go away close themselves once their client answers (or are cut at goodbyeMs).
    const until = performance.now() + goodbyeMs + FLUSH_GRACE_MS;
    while (ctx.tunnels.size > 0 && performance.now() < until) await sleep(20);
  };

  return {
    server: listening,
    async listen(host, port) {
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(port, host, () => {
          listening.off('error', reject);
          resolve();
        });
      });
      const bound = (listening.address() as AddressInfo).port;
      ctx.forwarding.port = String(bound);
      return bound;
    },

    async drain(timeoutMs) {
      const closed = stopAccepting();
      const deadline = performance.now() + timeoutMs;
      // GOAWAY: HTTP/2 clients open no new stream here; the streams in flight are in ctx.exchanges, waited for below.
      h2?.goaway();
      while ((ctx.exchanges.size > 0 || ctx.tunnels.size > 0 || !allConnectionsGone) && performance.now() < deadline) {
        await sleep(Math.min(50, Math.max(1, deadline - performance.now())));
      }
      await endEverything(closed, GOING_AWAY_GRACE_MS);
      clearInterval(sweep);
      if (ownsPools) {
        await Promise.race([ctx.pools.close(), sleep(Math.max(FLUSH_GRACE_MS, deadline - performance.now()))]);
        await ctx.pools.destroy();
      }
    },

    async close() {
      const closed = stopAccepting();
      clearInterval(sweep);
      await endEverything(closed, 0);
      if (ownsPools) await ctx.pools.destroy();
    },

    stats() {
      return { inflight: ctx.exchanges.size, websockets: ctx.tunnels.size };
    },

    handshakes() {
      return { ...counts };
    },
  };
}

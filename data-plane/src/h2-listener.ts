/**
 * HTTP/2 on the HTTPS listener: ALPN `h2` and `http/1.1` on one port, one proxy path.
 *
 * The listener stays the https.Server it was: it accepts, runs the handshake (SNI, live
 * certificates) and then node:http's HTTP/1.1 connection handling with all its hardening
 * (headersTimeout, 'upgrade' for WebSockets, 'checkContinue', 'clientError',
 * closeIdleConnections/closeAllConnections). Only the step after the handshake changes: a
 * socket whose ALPN is `h2` goes to an http2.Server that never listens
 * (`emit('connection', socket)`), every other one to the router's HTTP/1.1 path
 * (h1-listener.ts), which hands what it does not serve to node:http's own listener. Each
 * stream becomes an H2Client handed to the same proxyRequest as HTTP/1.1.
 *
 * Not http2.createSecureServer({ allowHTTP1: true }): on Node 20 its HTTP/1.1 side ignores
 * headersTimeout, requestTimeout and connectionsCheckingInterval given as options (fixed at
 * 60 s, 300 s, 30 s), has no closeAllConnections, and the 'request' listener HTTP/1.1 needs
 * makes it build compat request/response objects for every HTTP/2 stream as well.
 *
 * Limits per connection (session): SETTINGS_MAX_CONCURRENT_STREAMS = ROUTER_HTTP2_MAX_STREAMS
 * (more are refused by nghttp2, and a client that keeps trying loses the connection);
 * SETTINGS_MAX_HEADER_LIST_SIZE = node:http's header limit (16 KiB), an oversized head resets
 * its stream; at most 10 MB of session memory (new streams refused beyond); a 1 MiB
 * connection receive window over 64 KiB per stream (uploads on several streams are not
 * starved, and a paused stream buffers at most its window). Rapid reset (CVE-2023-44487):
 * nghttp2 ≥ 1.57 (Node 20.20 ships 1.61) answers more than 1000 RST_STREAM in a burst
 * (refilled at 33/s) with GOAWAY, and a reset stream aborts its upstream request at once.
 * No SETTINGS_ENABLE_CONNECT_PROTOCOL: WebSockets stay on HTTP/1.1.
 *
 * Timeouts: a connection must open its first stream within ROUTER_HEADERS_TIMEOUT; after
 * that, one with no frame either way for ROUTER_IDLE_TIMEOUT gets GOAWAY, and is cut if it
 * stays silent as long again. Streams themselves are timed by the exchanges' idle sweep.
 */
import http from 'node:http';
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ProxyContext } from './proxy/context.js';
import { H2Client } from './proxy/h2-client.js';
import { proxyRequest } from './proxy/http-proxy.js';

/** Node's default, stated: the cap on what one session may hold (nghttp2 state, queued frames). */
const MAX_SESSION_MEMORY_MB = 10;
const CONNECTION_WINDOW = 1024 * 1024;

export interface H2Listener {
  /** A TLS socket whose ALPN is h2, right after its handshake. */
  accept(socket: TLSSocket): void;
  /** GOAWAY to every session (and to those that start from now on): open streams finish, no new ones. */
  goaway(): void;
  /** Ends every session now. */
  destroy(): void;
}

/**
 * Takes node:http's own 'secureConnection' listener off `server` (an https.Server) and
 * returns it bound to the server: the step after the handshake becomes the caller's, which
 * gives each socket to HTTP/2, to the router's HTTP/1.1 path or back to node:http. Must run
 * before any other 'secureConnection' listener is added.
 */
export function takeSecureConnection(server: http.Server): (socket: TLSSocket) => void {
  const listeners = server.listeners('secureConnection');
  const http1 = listeners[0];
  if (listeners.length !== 1 || typeof http1 !== 'function') throw new Error('takeSecureConnection: expected node:https\' own connection listener alone');
  server.removeListener('secureConnection', http1 as (...args: unknown[]) => void);
  return (socket) => void http1.call(server, socket);
}

/**
 * HTTP/2 for `server` (an https.Server offering ALPN h2): `accept` takes the sockets whose
 * ALPN is h2 (the caller's 'secureConnection' step, see takeSecureConnection).
 */
export function attachHttp2(server: http.Server, ctx: ProxyContext, log: Logger): H2Listener {

  const { config, metrics } = ctx;
  const h2 = http2.createServer({
    settings: { maxConcurrentStreams: config.http2MaxStreams, maxHeaderListSize: http.maxHeaderSize, enablePush: false, enableConnectProtocol: false },
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
  });
  const sessions = new Set<ServerHttp2Session>();
  /** The socket being handed over: node:http2 creates its session synchronously within emit('connection'). */
  let accepting: TLSSocket | null = null;


  function onSessionClose(this: ServerHttp2Session): void {
    if (sessions.delete(this)) metrics.h2Sessions.dec();
  }

  function onSessionTimeout(this: ServerHttp2Session): void {
    if (this.closed) return void this.destroy();
    this.close();
    // Re-armed: a session still silent after its GOAWAY (a client not reading, a stream never ending) is cut.
    this.setTimeout(config.idleTimeoutMs);
  }

  h2.on('session', (session: ServerHttp2Session) => {
    const socket = accepting;
    if (socket === null) return void session.destroy();
    sessions.add(session);
    metrics.h2Sessions.inc();
    session.on('close', onSessionClose);
    session.on('timeout', onSessionTimeout);
    session.setTimeout(config.headersTimeoutMs);
    session.setLocalWindowSize(CONNECTION_WINDOW);
    let opened = false;
    // One closure per connection, so a stream finds its TLS socket without going through node:http2's socket proxy.
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders?: string[]) => {
      if (!opened) {
        opened = true;
        session.setTimeout(config.idleTimeoutMs);
      }
      const client = new H2Client(stream, headers, rawHeaders ?? flatten(headers), socket, log);
      proxyRequest(ctx, client, client, client.expectsContinue);
    });
    // A handshake that completed while draining: told at once.
    if (ctx.draining) session.close();
  });

  // Protocol errors, flow-control violations, nghttp2's own limits: the session is gone, the process is not.
  h2.on('sessionError', (err: Error) => log.debug({ err: err.message }, 'HTTP/2 session error'));

  return {
    accept(socket) {
      accepting = socket;
      try {
        h2.emit('connection', socket);
      } finally {
        accepting = null;
      }
    },
    goaway() {
      for (const session of sessions) session.close();
    },
    destroy() {
      for (const session of sessions) session.destroy();
    },
  };
}

/** For a runtime whose 'stream' event lacks raw headers (Node 20.18+ has them). */
function flatten(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}

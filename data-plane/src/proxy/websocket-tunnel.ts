/**
 * One WebSocket (or other Upgrade) session: the handshake request is written to a fresh TCP
 * connection to a container, then bytes are piped raw both ways, the container's 101 (or
 * refusal) included.
 *
 * Once the upstream socket is connected the tunnel drops its references to the balancer
 * state, the container slot and the record: an open tunnel holds only its two sockets and
 * its log fields, so no invalidation or scale event can reach it.
 */
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { RouterErrorCode } from '../errors.js';
import type { HostRecord } from '../../../proto/records.js';
import { accessLine } from './access-log.js';
import { stickyFromCookie, type AppBalance, type ContainerSlot } from './balancer.js';
import { emitAccessLine, lookupFailureCode, statusOf, type LiveTunnel, type ProxyContext } from './context.js';
import { rawErrorResponse, wantsJson } from './error-page.js';
import { RequestHead } from './headers.js';
import { httpsLocation } from './https-location.js';
import { MAX_ATTEMPTS } from './upstream-errors.js';
import { FrameCursor, GOING_AWAY_FRAME } from './websocket-frames.js';

const kTunnel = Symbol('tunnel');

interface TaggedSocket extends net.Socket {
  [kTunnel]?: Tunnel;
}

function onClientClose(this: TaggedSocket): void {
  this[kTunnel]?.close('-');
}
/** Either socket idle for wsIdleTimeoutMs: both directions are idle, since every byte crosses both. Also bounds a graceful close's flush. */
function onSocketIdle(this: TaggedSocket): void {
  this[kTunnel]?.close('IDLE_TIMEOUT');
  this.destroy();
}
/** Errors are followed by 'close', which does the work; a listener must exist or they crash the process. */
function ignoreError(): void {}

function onUpstreamConnect(this: TaggedSocket): void {
  this[kTunnel]?.connected(this);
}
function onUpstreamConnectFailure(this: TaggedSocket): void {
  this[kTunnel]?.connectFailed(this);
}
function onUpstreamError(this: TaggedSocket): void {
  this[kTunnel]?.close('UPSTREAM_ERROR');
}
function onUpstreamClose(this: TaggedSocket): void {
  this[kTunnel]?.close('-');
}
function onUpstreamFirstData(this: TaggedSocket, chunk: Buffer): void {
  const t = this[kTunnel];
  if (t === undefined) return;
  t.status = statusOfResponse(chunk);
  // Like an HTTP request's: from reaching the router to the answer's head (the container's 101, usually).
  t.ctx.requestMetrics.observe(t.status, (performance.now() - t.t0) / 1000);
}
/** Registered after the pipe's own listener: sees each chunk once the client was sent it. */
function onUpstreamData(this: TaggedSocket, chunk: Buffer): void {
  this[kTunnel]?.frames.observe(chunk);
}
/** While going away: forward up to the next frame boundary, then say goodbye. */
function onUpstreamDataGoingAway(this: TaggedSocket, chunk: Buffer): void {
  this[kTunnel]?.forwardUntilBoundary(chunk);
}
function discard(): void {}

/** The status of an HTTP/1.x status line at the start of `chunk`; 0 when it is not one. */
function statusOfResponse(chunk: Buffer): number {
  if (chunk.length < 12 || chunk[0] !== 0x48 /* H */ || chunk[8] !== 0x20) return 0;
  const a = chunk[9]! - 48;
  const b = chunk[10]! - 48;
  const c = chunk[11]! - 48;
  if (a < 1 || a > 5 || b < 0 || b > 9 || c < 0 || c > 9) return 0;
  return a * 100 + b * 10 + c;
}

export class Tunnel implements LiveTunnel {
  readonly at = Date.now();
  readonly t0 = performance.now();
  readonly head = new RequestHead();
  host = '-';
  app = '-';
  appLabel = '-';
  status = 0;
  private done = false;
  private open = false;
  private state: AppBalance | null = null;
  private roundRobin = false;
  private sticky: string | undefined = undefined;
  private slot: ContainerSlot | null = null;
  private tried: ContainerSlot[] | null = null;
  private attempts = 0;
  private upstream: TaggedSocket | null = null;
  private early: Buffer | null;
  private container = '-';
  private pickedAt = 0;
  private connectMs = 0;
  private openedAt = 0;
  /** Frame boundaries of what the client was sent, for a clean close when draining. */
  readonly frames = new FrameCursor();
  private goingAway = false;

  constructor(
    readonly ctx: ProxyContext,
    readonly req: IncomingMessage,
    readonly client: net.Socket,
    early: Buffer,
  ) {
    this.early = early.length > 0 ? early : null;
    const tagged = client as TaggedSocket;
    tagged[kTunnel] = this;
    client.on('error', ignoreError);
    client.on('close', onClientClose);
  }

  route(record: HostRecord | null): void {
    if (this.done) return;
    if (record === null) return this.fail('UNKNOWN_HOST');
    this.app = record.app;
    this.appLabel = this.ctx.metrics.appLabel(record.app);
    // Like any request of the app: no cleartext WebSocket either (browsers fail a ws:// handshake that is redirected).
    if (record.settings.force_https && this.ctx.forwarding.proto === 'http') {
      return this.fail('FORCE_HTTPS', httpsLocation(this.host, this.req.url ?? '/', this.ctx.config.httpsPort));
    }
    if (record.status !== 'running' || record.containers.length === 0) return this.fail('APP_STOPPED');
    // A tunnel about to be cut at the drain deadline is not worth opening.
    if (this.ctx.draining) return this.fail('DRAINING');
    // Tunnels are long-lived and not counted in the backlog, but a flooded app gets no new ones.
    if (this.ctx.backlog.inflight(record.app) >= this.ctx.config.maxInflightPerApp) return this.fail('BACKLOG_TOO_DEEP');
    this.state = this.ctx.balancer.stateFor(record.app, record.containers);
    this.roundRobin = record.settings.balancer === 'round_robin';
    if (record.settings.sticky_sessions) this.sticky = stickyFromCookie(this.head.cookie);
    this.connect();
  }

  lookupFailed(err: unknown): void {
    if (!this.done) this.fail(lookupFailureCode(this.ctx, err));
  }

  private connect(): void {
    const now = performance.now();
    const slot = this.ctx.balancer.pick(this.state!, this.roundRobin, this.sticky, this.tried, now);
    if (slot === null) return this.fail('UPSTREAM_REFUSED');
    if (this.attempts > 0) this.ctx.metrics.retries.inc();
    this.slot = slot;
    this.container = slot.id;
    this.attempts++;
    this.pickedAt = now;
    const up = net.connect({ host: slot.host, port: slot.port }) as TaggedSocket;
    up[kTunnel] = this;
    this.upstream = up;
    up.setTimeout(this.ctx.config.connectTimeoutMs);
    up.once('connect', onUpstreamConnect);
    up.once('timeout', onUpstreamConnectFailure);
    up.once('error', onUpstreamConnectFailure);
  }

  connectFailed(up: TaggedSocket): void {
    up[kTunnel] = undefined;
    up.on('error', ignoreError);
    up.destroy();
    this.upstream = null;
    if (this.done) return;
    const metrics = this.ctx.metrics;
    metrics.upstreamErrors.inc({ code: 'UPSTREAM_REFUSED' });
    const slot = this.slot!;
    this.slot = null;
    if (this.ctx.balancer.eject(slot, performance.now())) metrics.ejections.inc();
    (this.tried ??= []).push(slot);
    if (this.attempts >= MAX_ATTEMPTS) return this.fail('UPSTREAM_REFUSED');
    this.connect();
  }

  connected(up: TaggedSocket): void {
    up.setTimeout(0);
    up.removeListener('timeout', onUpstreamConnectFailure);
    up.removeListener('error', onUpstreamConnectFailure);
    up.on('error', onUpstreamError);
    up.on('close', onUpstreamClose);
    // From here on nothing that a topology change replaces is referenced.
    this.state = null;
    this.slot = null;
    this.tried = null;
    if (this.done) {
      up.destroy();
      return;
    }
    const now = performance.now();
    this.connectMs = now - this.pickedAt;
    this.openedAt = now;
    this.open = true;
    this.ctx.tunnels.add(this);
    this.ctx.metrics.websocketsOpen.inc();
    up.write(requestHead(this.req, this.head.upstream), 'latin1');
    if (this.early !== null) up.write(this.early);
    this.early = null;
    up.once('data', onUpstreamFirstData);
    const client = this.client;
    client.pipe(up);
    up.pipe(client);
    up.on('data', onUpstreamData);
    client.setTimeout(this.ctx.config.wsIdleTimeoutMs);
    client.on('timeout', onSocketIdle);
    up.setTimeout(this.ctx.config.wsIdleTimeoutMs);
    up.on('timeout', onSocketIdle);
  }

  /** Ends the session (once): both sockets closed, one access-log line. */
  close(code: string): void {
    if (this.done) return;
    if (this.goingAway) code = 'DRAINING';
    if (!this.open) {
      // The client left while the route or the container connection was pending.
      this.upstream?.destroy();
      return this.finish('CLIENT_ABORTED', 499);
    }
    if (code === '-') {
      // One side closed: let the other flush what is already queued (a close frame, say).
      this.client.destroySoon();
      this.upstream?.destroySoon();
    } else {
      this.client.destroy();
      this.upstream?.destroy();
    }
    this.ctx.tunnels.delete(this);
    this.ctx.metrics.websocketsOpen.dec();
    this.finish(code, this.status);
  }

  /**
   * The drain deadline: a WebSocket gets a close frame 1001 at the next frame boundary and
   * the client's answer is passed on to the container, so both ends see a clean close; the
   * client then ends the connection (RFC 6455 7.1.1) and `close` logs it. A session whose
   * frames cannot be followed (not a 101), or a client that never answers within
   * `graceMs`, is cut.
   */
  shutdown(graceMs = 0): void {
    if (this.done) return;
    if (!this.open || graceMs <= 0 || this.status !== 101 || !this.frames.followable() || this.upstream === null) {
      this.close('DRAINING');
      return;
    }
    if (this.goingAway) return;
    this.goingAway = true;
    const up = this.upstream;
    up.unpipe(this.client);
    up.removeListener('data', onUpstreamData);
    up.on('data', onUpstreamDataGoingAway);
    up.resume();
    const timer = setTimeout(() => this.close('DRAINING'), graceMs);
    timer.unref();
    this.client.once('close', () => clearTimeout(timer));
    if (this.frames.atBoundary()) this.sayGoodbye();
  }

  forwardUntilBoundary(chunk: Buffer): void {
    const end = this.frames.untilBoundary(chunk);
    if (end === -1) {
      if (!this.frames.followable()) return this.close('DRAINING');
      this.client.write(chunk);
      return;
    }
    if (end > 0) this.client.write(chunk.subarray(0, end));
    this.sayGoodbye();
  }

  private sayGoodbye(): void {
    const up = this.upstream!;
    up.removeListener('data', onUpstreamDataGoingAway);
    // The container's own close frame, answering the client's, has nowhere to go now.
    up.on('data', discard);
    this.client.write(GOING_AWAY_FRAME);
  }

  fail(code: RouterErrorCode, location: string | null = null): void {
    if (this.done) return;
    this.ctx.requestMetrics.observe(statusOf(code), (performance.now() - this.t0) / 1000);
    const json = wantsJson(this.req.headers.accept);
    const client = this.client;
    if (client.writable) {
      client.write(rawErrorResponse(code, this.head.requestId, json, location));
      client.destroySoon();
    } else {
      client.destroy();
    }
    this.finish(code, statusOf(code));
  }

  private finish(code: string, status: number): void {
    this.done = true;
    const ctx = this.ctx;
    ctx.requestMetrics.count(this.appLabel, status, code);
    const client = this.client;
    emitAccessLine(
      ctx,
      accessLine(
        this.at,
        code,
        this.app,
        this.req.method ?? 'GET',
        this.host,
        this.req.url ?? '/',
        status,
        client.bytesRead,
        client.bytesWritten,
        Math.round(this.connectMs),
        this.open ? Math.round(performance.now() - this.openedAt) : 0,
        this.head.requestId,
        this.container,
        this.head.clientIp,
        'websocket',
      ),
    );
  }
}

/** The handshake as the container gets it: request line, rewritten headers, blank line. */
function requestHead(req: IncomingMessage, headers: string[]): string {
  let head = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n`;
}

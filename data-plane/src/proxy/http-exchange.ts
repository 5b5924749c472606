/**
 * One proxied HTTP request, from the route lookup to the access-log line. The exchange is
 * its own undici dispatch handler (the native callback API: no per-request closures, no
 * stream objects, no header object per response), so a request costs this object, its
 * header list and the dispatch options. Retry rules: upstream-errors.ts.
 *
 * The client is HTTP/1.1 (node:http's request and response, as they are) or HTTP/2 (an
 * H2Client over one stream); `h2` is asked only where the protocols differ: the body handed
 * to undici, `Connection: close` (HTTP/1.1 only: HTTP/2 has GOAWAY), whether the client is
 * gone, and the access log's protocol.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { RouterErrorCode } from '../errors.js';
import type { HostRecord } from '../../../proto/records.js';
import { accessLine } from './access-log.js';
import { stickyFromCookie, type AppBalance, type ContainerSlot } from './balancer.js';
import type { ClientRequest, ClientResponse } from './client.js';
import { emitAccessLine, statusOf, type LiveExchange, type ProxyContext } from './context.js';
import { wantsJson, writeErrorPage } from './error-page.js';
import { H2Client } from './h2-client.js';
import { RequestHead, responseHeaders } from './headers.js';
import { MAX_ATTEMPTS, isReplayableMethod, verdictFor } from './upstream-errors.js';

const kExchange = Symbol('exchange');

interface TaggedResponse extends ClientResponse {
  [kExchange]?: HttpExchange;
}

/** Reasons passed to undici's abort; allocated once, as nobody reads their stacks. */
const CLIENT_GONE = new Error('client went away');
const STOPPED = new Error('router stopped the request');

function onResponseClose(this: TaggedResponse): void {
  const ex = this[kExchange];
  if (ex !== undefined && !ex.done) ex.clientClosed();
}

function onResponseDrain(this: TaggedResponse): void {
  this[kExchange]?.resumeUpstream?.();
}

function retryLater(ex: HttpExchange): void {
  if (ex.done) return;
  try {
    ex.dispatch('UPSTREAM_ERROR');
  } catch (err) {
    ex.ctx.log.error({ err }, 'proxy retry failed');
    ex.fail('UPSTREAM_ERROR');
  }
}

export class HttpExchange implements Dispatcher.DispatchHandler, LiveExchange {
  readonly at = Date.now();
  readonly t0 = performance.now();
  readonly head = new RequestHead();
  readonly method: string;
  host = '-';
  app = '-';
  appLabel = '-';
  done = false;
  private admitted = false;
  private started = false;
  private headersSent = false;
  private state: AppBalance | null = null;
  private roundRobin = false;
  private stickyEnabled = false;
  private sticky: string | undefined = undefined;
  private slot: ContainerSlot | null = null;
  /** `max-age=<n>` when the app asks for HSTS and this is the HTTPS listener (never on plain HTTP: RFC 6797 §7.2). */
  private hsts: string | null = null;
  private tried: ContainerSlot[] | null = null;
  private attempts = 0;
  private container = '-';
  private pickedAt = 0;
  private connectMs = 0;
  private sentAt = 0;
  private status = 0;
  bytesIn = 0;
  bytesOut = 0;
  lastActivity = 0;
  idleSince: number;
  private abortUpstream: ((err?: Error) => void) | null = null;
  resumeUpstream: (() => void) | null = null;
  /** The HTTP/2 stream's adapter (also `req` and `res`); null for HTTP/1.1. */
  private readonly h2: H2Client | null;

  constructor(
    readonly ctx: ProxyContext,
    readonly req: ClientRequest,
    readonly res: ClientResponse,
    private expectContinue: boolean,
  ) {
    this.method = req.method ?? 'GET';
    this.idleSince = this.t0;
    this.h2 = req instanceof H2Client ? req : null;
  }

  /** The client left (HTTP/1.1: its connection; HTTP/2: its stream) before anything was answered. */
  clientGone(): boolean {
    return this.h2 !== null ? this.h2.gone : this.req.socket.destroyed;
  }

  /** The client left before the route was known. */
  abandon(): void {
    this.finish('CLIENT_ABORTED', 499);
  }

  /** Admitted (the app's backlog already counts it): pick a container and send. */
  start(record: HostRecord): void {
    const ctx = this.ctx;
    this.admitted = true;
    ctx.requestMetrics.inflight(this.appLabel).n++;
    ctx.exchanges.add(this);
    const res = this.res as TaggedResponse;
    res[kExchange] = this;
    res.on('close', onResponseClose);
    res.on('drain', onResponseDrain);
    this.state = ctx.balancer.stateFor(record.app, record.containers);
    this.roundRobin = record.settings.balancer === 'round_robin';
    if (record.settings.hsts_max_age > 0 && ctx.forwarding.proto === 'https') this.hsts = `max-age=${record.settings.hsts_max_age}`;
    if (record.settings.sticky_sessions) {
      this.stickyEnabled = true;
      this.sticky = stickyFromCookie(this.head.cookie);
    }
    if (this.expectContinue) {
      // Node held back "100 Continue" (checkContinue): only now is the body worth sending.
      this.expectContinue = false;
      res.writeContinue();
    }
    this.dispatch('UPSTREAM_REFUSED');
  }

  /** Sends the request to a container; `noneLeft`: the answer when every container was tried. */
  dispatch(noneLeft: RouterErrorCode): void {
    const now = performance.now();
    const slot = this.ctx.balancer.pick(this.state!, this.roundRobin, this.sticky, this.tried, now);
    if (slot === null) return this.fail(noneLeft);
    if (this.attempts > 0) this.ctx.metrics.retries.inc();
    this.slot = slot;
    this.container = slot.id;
    slot.inflight++;
    this.attempts++;
    this.pickedAt = now;
    this.ctx.pools.get(slot.origin).dispatch(
      {
        path: this.req.url ?? '/',
        method: this.method,
        headers: this.head.upstream,
        body: this.head.hasBody ? this.requestBody() : null,
        headersTimeout: this.ctx.config.firstByteTimeoutMs,
        bodyTimeout: 0,
      },
      this,
    );
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.done) return abort(CLIENT_GONE);
    this.abortUpstream = abort;
    this.started = true;
    const now = performance.now();
    this.connectMs = now - this.pickedAt;
    this.sentAt = now;
  }

  onBodySent(chunk: Buffer | number): void {
    this.bytesIn += typeof chunk === 'number' ? chunk : chunk.length;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx (103 Early Hints): not forwarded; Node's ServerResponse cannot relay them as they come.
    if (statusCode < 200) return true;
    if (this.done) return false;
    this.resumeUpstream = resume;
    const slot = this.slot!;
    const setCookie = this.stickyEnabled && slot.cookieValue !== this.sticky ? slot.setCookie : null;
    const headers = responseHeaders(rawHeaders, this.ctx.forwarding.via, this.head.requestId, setCookie, this.ctx.draining && this.h2 === null);
    if (this.hsts !== null && !hasHeader(headers, 'strict-transport-security')) headers.push('strict-transport-security', this.hsts);
    if (statusText !== '') this.res.writeHead(statusCode, statusText, headers);
    else this.res.writeHead(statusCode, headers);
    this.headersSent = true;
    this.status = statusCode;
    this.ctx.requestMetrics.observe(statusCode, (performance.now() - this.t0) / 1000);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytesOut += chunk.length;
    // false pauses undici until the client drains (onResponseDrain): memory stays flat.
    return this.res.write(chunk);
  }

  onComplete(): void {
    this.releaseSlot();
    if (this.done) return;
    this.res.end();
    this.finish('-', this.status);
  }

  onError(err: Error): void {
    const slot = this.releaseSlot();
    if (this.done) return;
    try {
      this.upstreamFailed(err, slot);
    } catch (failure) {
      this.ctx.log.error({ err: failure }, 'proxy error handling failed');
      this.res.destroy();
      this.finish('UPSTREAM_ERROR', this.headersSent ? this.status : 502);
    }
  }

  private upstreamFailed(err: Error, slot: ContainerSlot | null): void {
    const replayable = !this.head.hasBody && isReplayableMethod(this.method);
    const verdict = verdictFor(err, this.started, this.headersSent, replayable);
    const metrics = this.ctx.metrics;
    if (verdict.upstreamFault) metrics.upstreamErrors.inc({ code: verdict.code });
    switch (verdict.recovery) {
      case 'retry':
        if (slot !== null) {
          if (this.ctx.balancer.eject(slot, performance.now())) metrics.ejections.inc();
          (this.tried ??= []).push(slot);
        }
        if (this.attempts >= MAX_ATTEMPTS) return this.fail(verdict.code);
        return this.dispatch(verdict.code);
      case 'replay':
        if (this.attempts >= MAX_ATTEMPTS) return this.fail(verdict.code);
        this.started = false;
        this.abortUpstream = null;
        // Not from inside undici's error loop: that loop may still be failing this pool's queue.
        process.nextTick(retryLater, this);
        return;
      case 'answer':
        return this.fail(verdict.code);
      case 'cut':
        this.res.destroy();
        return this.finish(verdict.code, this.status);
    }
  }

  clientClosed(): void {
    this.finish('CLIENT_ABORTED', this.headersSent ? this.status : 499);
    this.abortUpstream?.(CLIENT_GONE);
  }

  idleTimeout(): void {
    this.finish('IDLE_TIMEOUT', this.headersSent ? this.status : statusOf('IDLE_TIMEOUT'));
    this.abortUpstream?.(STOPPED);
    this.res.destroy();
  }

  shutdown(): void {
    if (this.done) return;
    // fail() cuts the connection instead when response headers already went out.
    this.fail('DRAINING');
    this.abortUpstream?.(STOPPED);
  }

  /** Answers with the router's page of `code` (nothing of the container's was sent yet). */
  fail(code: RouterErrorCode): void {
    this.page(code, null);
  }

  /** 308 FORCE_HTTPS to `location`, before anything reached the app. */
  redirect(location: string): void {
    this.page('FORCE_HTTPS', location);
  }

  /** The router's own successful answer (an ACME key authorization), logged with code '-'. */
  answer(status: number, contentType: string, body: string): void {
    if (this.done) return;
    const payload = Buffer.from(body, 'utf8');
    const headers = ['content-type', contentType, 'content-length', String(payload.length), 'cache-control', 'no-store', 'x-request-id', this.head.requestId];
    if (this.mustClose()) headers.push('connection', 'close');
    this.res.writeHead(status, headers);
    this.res.end(payload);
    if (this.method !== 'HEAD') this.bytesOut = payload.length;
    this.ctx.requestMetrics.observe(status, (performance.now() - this.t0) / 1000);
    this.finish('-', status);
  }

  private page(code: RouterErrorCode, location: string | null): void {
    if (this.done) return;
    if (this.res.headersSent) {
      this.res.destroy();
      return this.finish(code, this.status);
    }
    const status = writeErrorPage(this.res, code, this.head.requestId, wantsJson(this.req.headers.accept), this.mustClose(), location);
    this.ctx.requestMetrics.observe(status, (performance.now() - this.t0) / 1000);
    this.finish(code, status);
  }

  /** An unread body (or a drain) means this connection must not carry another request. HTTP/2: never (streams are independent; drain sends GOAWAY). */
  private mustClose(): boolean {
    return this.h2 === null && (this.ctx.draining || (this.head.hasBody && !this.req.complete));
  }

  private requestBody(): Readable {
    return this.h2 !== null ? this.h2.body() : (this.req as IncomingMessage);
  }

  private releaseSlot(): ContainerSlot | null {
    const slot = this.slot;
    if (slot !== null) {
      slot.inflight--;
      this.slot = null;
    }
    return slot;
  }

  private finish(code: string, status: number): void {
    if (this.done) return;
    this.done = true;
    const ctx = this.ctx;
    if (this.admitted) {
      ctx.backlog.leave(this.app);
      ctx.requestMetrics.inflight(this.appLabel).n--;
      ctx.exchanges.delete(this);
    }
    ctx.requestMetrics.count(this.appLabel, status, code);
    ctx.requestMetrics.protocol(this.h2 !== null);
    const end = performance.now();
    emitAccessLine(
      ctx,
      accessLine(
        this.at,
        code,
        this.app,
        this.method,
        this.host,
        this.req.url ?? '/',
        status,
        this.bytesIn,
        this.bytesOut,
        Math.round(this.connectMs),
        this.sentAt === 0 ? 0 : Math.round(end - this.sentAt),
        this.head.requestId,
        this.container,
        this.head.clientIp,
        this.h2 !== null ? 'h2' : 'http/1.1',
      ),
    );
  }
}

/** The app's own header wins over the router's default (flat [name, value, ...] list). */
function hasHeader(headers: readonly string[], lowerName: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === lowerName) return true;
  return false;
}

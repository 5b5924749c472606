/**
 * The request path: Host → route lookup (synchronous on a cache hit) → HttpExchange, and
 * the idle sweep over the exchanges in flight.
 */
import { ACME_CHALLENGE_PATH } from '../../../proto/acme.js';
import { hostFromHeader } from '../../../proto/names.js';
import type { HostRecord } from '../../../proto/records.js';
import { answerAcmeChallenge } from '../acme/acme-answer.js';
import type { ClientRequest, ClientResponse } from './client.js';
import { lookupFailureCode, type ProxyContext } from './context.js';
import { scanRequest } from './headers.js';
import { HttpExchange } from './http-exchange.js';
import { httpsLocation } from './https-location.js';

/**
 * `expectContinue`: the client waits for "100 Continue" (HTTP/1.1: the request came through
 * 'checkContinue'). HTTP/2 streams come here too, `req` and `res` being one H2Client.
 */
export function proxyRequest(ctx: ProxyContext, req: ClientRequest, res: ClientResponse, expectContinue: boolean): void {
  const ex = new HttpExchange(ctx, req, res, expectContinue);
  try {
    scanRequest(req, false, ctx.forwarding, ex.at, ex.head);
    // Only HTTP/2 delivers CONNECT here (node:http emits 'connect', left unhandled); nothing to tunnel to.
    if (ex.method === 'CONNECT') return ex.fail('BAD_REQUEST');
    // Before the Host is even checked: a CA validates domains no app may answer on yet.
    const url = req.url ?? '/';
    if (url.startsWith(ACME_CHALLENGE_PATH) && ctx.acme !== undefined && (ex.method === 'GET' || ex.method === 'HEAD')) {
      return answerAcmeChallenge(ex, ctx.acme, url);
    }
    const head = ex.head;
    const host = head.hostCount === 1 ? hostFromHeader(head.host) : null;
    if (host === null) {
      // Logged as sent, bounded: it is the client's text.
      if (head.host !== undefined) ex.host = head.host.slice(0, 256);
      return ex.fail('BAD_HOST');
    }
    ex.host = host;
    let found;
    try {
      found = ctx.routes.resolve(host);
    } catch (err) {
      return lookupFailed(ex, err);
    }
    if (found instanceof Promise) {
      // A cache miss: the closures cost only here.
      found.then(
        (record) => guarded(ex, record, null),
        (err: unknown) => guarded(ex, null, err),
      );
    } else {
      route(ex, found);
    }
  } catch (err) {
    // A bug must cost one request, not the process.
    ctx.log.error({ err }, 'request handling failed');
    if (!ex.done) {
      if (res.headersSent) res.destroy();
      else ex.fail('UPSTREAM_ERROR');
    }
  }
}

function route(ex: HttpExchange, record: HostRecord | null): void {
  // The client may have left while a lookup went to Redis.
  if (ex.clientGone()) return ex.abandon();
  if (record === null) return ex.fail('UNKNOWN_HOST');
  ex.app = record.app;
  ex.appLabel = ex.ctx.metrics.appLabel(record.app);
  if (record.settings.force_https && ex.ctx.forwarding.proto === 'http') {
    return ex.redirect(httpsLocation(ex.host, ex.req.url ?? '/', ex.ctx.config.httpsPort));
  }
  if (record.status !== 'running' || record.containers.length === 0) return ex.fail('APP_STOPPED');
  if (!ex.ctx.backlog.tryEnter(record.app)) return ex.fail('BACKLOG_TOO_DEEP');
  ex.start(record);
}

function lookupFailed(ex: HttpExchange, err: unknown): void {
  if (ex.clientGone()) return ex.abandon();
  ex.fail(lookupFailureCode(ex.ctx, err));
}

function guarded(ex: HttpExchange, record: HostRecord | null, err: unknown): void {
  try {
    if (err === null) route(ex, record);
    else lookupFailed(ex, err);
  } catch (failure) {
    ex.ctx.log.error({ err: failure }, 'request handling failed');
    if (!ex.done) ex.res.destroy();
  }
}

/**
 * Closes exchanges that moved no body bytes either way for idleMs. Comparing counters the
 * exchange keeps anyway costs nothing per chunk; the sweep's period bounds the precision.
 */
export function sweepIdle(ctx: ProxyContext, now: number): void {
  const idleMs = ctx.config.idleTimeoutMs;
  for (const ex of ctx.exchanges) {
    const activity = ex.bytesIn + ex.bytesOut;
    if (activity !== ex.lastActivity) {
      ex.lastActivity = activity;
      ex.idleSince = now;
    } else if (now - ex.idleSince >= idleMs) {
      ex.idleTimeout();
    }
  }
}

/**
 * The HTTP side of the shipper's port: probes, metrics and the live tail
 * `GET /v1/apps/:app/logs?lines=100&follow=1` (bearer token; NDJSON over chunked HTTP, or
 * SSE with `Accept: text/event-stream`). Errors are `{"code","message"}` with a code from
 * errors.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isValidAppName } from '../../../proto/names.js';
import { TokenSet } from '../auth.js';
import { ShipperHttpError } from '../errors.js';
import type { ShipperMetrics } from '../metrics.js';
import { Subscriber, type TailFormat } from '../tail/subscriber.js';
import type { TailHub } from '../tail/tail-hub.js';

export const DEFAULT_TAIL_LINES = 100;
export const MAX_TAIL_LINES = 10_000;
/** Bytes queued to one tail client before its lines are dropped. */
export const TAIL_MAX_BUFFERED = 1024 * 1024;

export interface ApiDeps {
  tokens: TokenSet;
  metrics: ShipperMetrics;
  hub: TailHub;
  /** The last `n` lines of the app: from its file, or from memory. */
  history(app: string, n: number): Promise<Buffer>;
  readiness(): { ready: boolean; detail: Record<string, unknown> };
  log: Logger;
  tailMaxBuffered?: number;
}

const LOGS_PATH = /^\/v1\/apps\/([^/]*)\/logs$/;

interface TailQuery {
  lines: number;
  follow: boolean;
}

function parseTailQuery(params: URLSearchParams): TailQuery {
  const query: TailQuery = { lines: DEFAULT_TAIL_LINES, follow: false };
  const seen = new Set<string>();
  for (const [key, value] of params) {
    if (seen.has(key)) throw new ShipperHttpError('INVALID_PARAMETER', `${key}: give it once`);
    seen.add(key);
    if (key === 'lines') {
      if (!/^[0-9]{1,6}$/.test(value) || Number(value) > MAX_TAIL_LINES) throw new ShipperHttpError('INVALID_PARAMETER', `lines: must be an integer from 0 to ${MAX_TAIL_LINES}`);
      query.lines = Number(value);
    } else if (key === 'follow') {
      if (value === '1' || value === 'true') query.follow = true;
      else if (value === '0' || value === 'false') query.follow = false;
      else throw new ShipperHttpError('INVALID_PARAMETER', 'follow: must be 1, 0, true or false');
    } else {
      throw new ShipperHttpError('UNKNOWN_PARAMETER', `${key}: unknown query parameter (allowed: lines, follow)`);
    }
  }
  return query;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headOnly = false): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(headOnly ? undefined : text);
}

export function createApiHandler(deps: ApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, log } = deps;
  const maxBuffered = deps.tailMaxBuffered ?? TAIL_MAX_BUFFERED;

  const refuse = (res: ServerResponse, err: ShipperHttpError, req: IncomingMessage): void => {
    log.info({ code: err.code, url: req.url, reason: err.message }, 'request refused');
    if (err.code === 'UNAUTHENTICATED') res.setHeader('www-authenticate', 'Bearer');
    sendJson(res, err.httpStatus, err.toJSON(), req.method === 'HEAD');
  };

  async function tail(req: IncomingMessage, res: ServerResponse, app: string, params: URLSearchParams): Promise<void> {
    const token = TokenSet.bearer(req.headers.authorization);
    if (token === null || !deps.tokens.accepts(token)) {
      metrics.authFailures.inc({ kind: 'http', reason: token === null ? 'missing' : 'bad_token' });
      throw new ShipperHttpError('UNAUTHENTICATED', token === null ? 'send Authorization: Bearer <token>' : 'the bearer token is not valid');
    }
    if (!isValidAppName(app)) throw new ShipperHttpError('INVALID_APP', `${JSON.stringify(app.slice(0, 64))} is not an app name (^[a-z0-9][a-z0-9-]{0,62}$)`);
    const query = parseTailQuery(params);
    const format: TailFormat = (req.headers.accept ?? '').includes('text/event-stream') ? 'sse' : 'ndjson';
    res.writeHead(200, {
      'content-type': format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    const subscriber = new Subscriber(res, format, maxBuffered, metrics);
    // Subscribed before the history is read, so no line falls between the two.
    const unsubscribe = query.follow ? deps.hub.subscribe(app, subscriber) : null;
    const stop = (): void => {
      unsubscribe?.();
      subscriber.close();
    };
    res.once('close', stop);
    let history: Buffer;
    try {
      history = await deps.history(app, query.lines);
    } catch (err) {
      log.error({ err, app }, 'could not read the tail history');
      history = Buffer.alloc(0);
    }
    subscriber.start(history);
    if (!query.follow) stop();
    else res.flushHeaders();
  }

  return (req, res) => {
    // Split by hand: `new URL('//x/…', base)` would read `x` as a host.
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    const isGet = req.method === 'GET' || req.method === 'HEAD';
    try {
      if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
        if (!isGet) throw new ShipperHttpError('METHOD_NOT_ALLOWED', `${req.method} ${path}: use GET`);
        if (path === '/healthz') return sendJson(res, 200, { status: 'ok' }, req.method === 'HEAD');
        if (path === '/readyz') {
          const r = deps.readiness();
          return sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r.detail }, req.method === 'HEAD');
        }
        metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
            res.end(req.method === 'HEAD' ? undefined : text);
          },
          (err: Error) => {
            log.error({ err }, 'metrics unavailable');
            sendJson(res, 500, new ShipperHttpError('INTERNAL', 'metrics unavailable').toJSON());
          },
        );
        return;
      }
      const m = LOGS_PATH.exec(path);
      if (m === null) throw new ShipperHttpError('NOT_FOUND', `no endpoint ${req.method} ${path}; see docs/API.md`);
      if (req.method !== 'GET') throw new ShipperHttpError('METHOD_NOT_ALLOWED', `${req.method} ${path}: use GET`);
      tail(req, res, m[1]!, params).catch((err: unknown) => {
        if (err instanceof ShipperHttpError && !res.headersSent) return refuse(res, err, req);
        log.error({ err, url: req.url }, 'tail failed');
        if (!res.headersSent) sendJson(res, 500, new ShipperHttpError('INTERNAL', 'internal error').toJSON());
        else res.destroy();
      });
    } catch (err) {
      if (err instanceof ShipperHttpError) return refuse(res, err, req);
      log.error({ err, url: req.url }, 'request failed');
      sendJson(res, 500, new ShipperHttpError('INTERNAL', 'internal error').toJSON());
    }
  };
}

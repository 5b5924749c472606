/**
 * The REST front end (fastify): decodes, authenticates, calls the EventService, encodes.
 * No rule about events lives here.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isValidAppName } from '../../../proto/names.js';
import { SIGNATURE_HEADER, type Authenticator } from '../auth.js';
import { ApiError, invalidField } from '../errors.js';
import type { AcmeChallengeService } from '../core/acme.js';
import type { EventService } from '../core/event-service.js';
import { appView, routeView } from '../core/views.js';
import type { ControlPlaneMetrics } from '../metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
    signatureToVerify?: string;
  }
}

export const BODY_LIMIT = 1024 * 1024;

import type { FleetStore } from '../store/fleet-store.js';

export interface RestServerDeps {
  service: EventService;
  acme: AcmeChallengeService;
  auth: Authenticator;
  metrics: ControlPlaneMetrics;
  log: Logger;
  platformDomain: string;
  fleet: FleetStore;
}

const EMPTY = Buffer.alloc(0);

function header(req: FastifyRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Fastify's own errors (body limit, media type, bad URL...) mapped onto our catalogue. */
function fromFastify(err: FastifyError): ApiError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('BODY_TOO_LARGE', `the body is larger than ${BODY_LIMIT} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('UNSUPPORTED_MEDIA_TYPE', 'send Content-Type: application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('INVALID_JSON', 'the body is empty: send a JSON object');
    default:
      if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
        return new ApiError('BAD_REQUEST', err.message);
      }
      return null;
  }
}

/**
 * V8 quotes a piece of the input in some JSON.parse errors (`Unexpected token 'x', "…" is not
 * valid JSON`); the body may hold a private key, so the quote is dropped from answers and logs.
 */
function withoutSnippet(message: string): string {
  const quote = message.search(/(\.\.\.)?"/);
  return (quote < 0 ? message : message.slice(0, quote).replace(/[,\s]+$/, '')).slice(0, 200);
}

function queryParams(req: FastifyRequest, allowed: readonly string[]): Record<string, string> {
  const query = (req.query ?? {}) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (!allowed.includes(key)) throw new ApiError('UNKNOWN_FIELD', `${key}: unknown query parameter (allowed: ${allowed.join(', ')})`, key);
    if (typeof value !== 'string') throw invalidField(key, 'must be given once');
    out[key] = value;
  }
  return out;
}

export function buildRestServer(deps: RestServerDeps): FastifyInstance {
  const { service, acme, auth, metrics, log, platformDomain, fleet } = deps;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Our error handler logs refusals with their code; per-request lines would only add noise.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    requestTimeout: 10_000,
    return503OnClosing: true,
    requestIdHeader: false,
    // ACME tokens may be 256 characters: longer parameters reach the validator and get its answer.
    routerOptions: { maxParamLength: 1024 },
  });

  app.removeAllContentTypeParsers();
  // Parsed by hand from the raw bytes: HMAC signatures cover exactly what was received.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const raw = body as Buffer;
    req.rawBody = raw;
    if (raw.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(raw.toString('utf8')));
    } catch (err) {
      done(new ApiError('INVALID_JSON', `the body is not valid JSON: ${withoutSnippet((err as Error).message)}`) as unknown as FastifyError, undefined);
    }
  });

  app.setErrorHandler((err: FastifyError | ApiError, req: FastifyRequest, reply: FastifyReply) => {
    const apiError = err instanceof ApiError ? err : (fromFastify(err as FastifyError) ?? service.toApiError(err, 'http'));
    if (apiError.httpStatus >= 500) req.log.warn({ code: apiError.code, url: req.url, err: err.message }, 'request failed');
    else req.log.info({ code: apiError.code, url: req.url, reason: apiError.message }, 'request refused');
    void reply.code(apiError.httpStatus).header('x-request-id', req.id).send(apiError.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new ApiError('NOT_FOUND', `no endpoint ${req.method} ${req.url.split('?')[0]}; see docs/API.md`).toJSON());
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => {
    await service.ready();
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  void app.register(
    async (v1) => {
      v1.addHook('onRequest', async (req) => {
        const presented = { authorization: header(req, 'authorization'), signature: header(req, SIGNATURE_HEADER) };
        if (auth.precheck(presented)) req.signatureToVerify = presented.signature;
      });
      v1.addHook('preHandler', async (req) => {
        if (req.signatureToVerify !== undefined) await auth.verifySignature(req.signatureToVerify, req.rawBody ?? EMPTY);
      });

      v1.post('/events', async (req) => service.applyEvent(req.body));

      v1.get('/apps', async (req) => {
        const q = queryParams(req, ['cursor', 'limit']);
        let limit = 100;
        if (q['limit'] !== undefined) {
          limit = Number(q['limit']);
          if (!/^[0-9]{1,4}$/.test(q['limit']) || limit < 1 || limit > 1000) throw invalidField('limit', 'must be an integer from 1 to 1000');
        }
        const cursor = q['cursor'] ?? null;
        if (cursor !== null && !isValidAppName(cursor)) throw invalidField('cursor', 'must be the next_cursor of a previous page');
        const page = await service.listApps(cursor, limit);
        return { apps: page.apps.map((a) => appView(a, platformDomain)), next_cursor: page.next };
      });

      v1.get<{ Params: { app: string } }>('/apps/:app', async (req) => {
        if (!isValidAppName(req.params.app)) throw invalidField('app', 'must match ^[a-z0-9][a-z0-9-]{0,62}$');
        return appView(await service.getApp(req.params.app), platformDomain);
      });

      v1.get<{ Params: { hostname: string } }>('/routes/:hostname', async (req) => routeView(await service.resolveHost(req.params.hostname)));

      v1.get('/routers', async () => {
        try {
          return await fleet.list();
        } catch (err) {
          throw service.toApiError(err, 'list_routers');
        }
      });

      v1.put<{ Params: { token: string } }>('/acme-challenges/:token', async (req) => acme.put(req.params.token, req.body));
      v1.delete<{ Params: { token: string } }>('/acme-challenges/:token', async (req) => acme.delete(req.params.token));
    },
    { prefix: '/v1' },
  );

  return app;
}

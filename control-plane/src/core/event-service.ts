/**
 * The one core behind both front ends (REST and gRPC): validate, de-duplicate, plan and
 * apply an event atomically; read apps and routes. Front ends only decode, authenticate and
 * encode; every rule is here or below.
 */
import { createHash } from 'node:crypto';
import { ReplyError } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { KeyRing } from '../../../proto/key-envelope.js';
import { RecordError, type AppRecord } from '../../../proto/records.js';
import { normalizeHostname } from '../../../proto/names.js';
import { ApiError } from '../errors.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import type { AppPage, ResolvedRoute, RouteStore } from '../store/route-store.js';
import { validateEvent, type PlatformEvent } from './event.js';
import { KeyedQueue } from './keyed-queue.js';
import { planEvent } from './plan.js';

export interface ApplyResult {
  applied: true;
  version: number;
  duplicate?: true;
}

export interface EventServiceOptions {
  platformDomain: string;
  idempotencyTtlSeconds: number;
  /** From KEY_ENCRYPTION_KEY(S_PREVIOUS); without it certificate set events are refused (ENCRYPTION_KEY_MISSING). */
  keyRing?: KeyRing | undefined;
  /** Compare-and-set retries when another instance writes the same app concurrently. */
  maxAttempts?: number;
}

/** The idempotency hash covers what the event does, never the key itself in clear. */
function eventHash(e: PlatformEvent): string {
  const cert = e.certificate;
  const canonical = JSON.stringify([
    e.app,
    e.seq,
    e.type,
    e.containers ?? null,
    e.domains ?? null,
    cert === undefined ? null : cert.remove ? [cert.domain, 'remove'] : [cert.domain, cert.validated.fingerprint256, createHash('sha256').update(cert.validated.keyPem).digest('hex')],
    e.settings ?? null,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

const ABSENT = Symbol('absent');

export class EventService {
  private readonly queue = new KeyedQueue();
  /**
   * App records as this instance last wrote or read them. Events of one app are serialized
   * here and the apply script compare-and-sets on the record's version, so a cached record
   * saves the read round trip on the common path and is merely re-read when another
   * instance wrote in between (CONFLICT). Bounded by total containers + domains held.
   */
  private readonly apps = new LRUCache<string, AppRecord | typeof ABSENT>({
    max: 10_000,
    maxSize: 500_000,
    sizeCalculation: (r) => (r === ABSENT ? 1 : 1 + r.containers.length + r.domains.length),
  });
  private readonly maxAttempts: number;

  constructor(
    private readonly store: RouteStore,
    private readonly metrics: ControlPlaneMetrics,
    private readonly log: Logger,
    private readonly options: EventServiceOptions,
  ) {
    this.maxAttempts = options.maxAttempts ?? 20;
  }

  /** Validates `body` (decoded JSON or its gRPC equivalent) and applies it. Throws ApiError. */
  async applyEvent(body: unknown): Promise<ApplyResult> {
    let type = 'invalid';
    const started = process.hrtime.bigint();
    try {
      const event = validateEvent(body, { platformDomain: this.options.platformDomain });
      type = event.type;
      const result = await this.queue.run(event.app, () => this.applyValidated(event));
      this.metrics.events.inc({ type, outcome: result.duplicate ? 'duplicate' : 'applied' });
      this.metrics.applySeconds.observe({ type }, Number(process.hrtime.bigint() - started) / 1e9);
      return result;
    } catch (err) {
      const apiError = this.toApiError(err, 'apply');
      this.metrics.events.inc({ type, outcome: apiError.code });
      throw apiError;
    }
  }

  private async applyValidated(event: PlatformEvent): Promise<ApplyResult> {
    const hash = eventHash(event);
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      let app: AppRecord | null;
      const cached = attempt === 0 ? this.apps.get(event.app) : undefined;
      if (cached === undefined) {
        const read = await this.store.readForApply(event.id, event.app);
        if (read.previous !== null) return this.duplicate(event, read.previous.hash, hash, read.previous.version);
        app = read.app;
        this.apps.set(event.app, app ?? ABSENT);
      } else {
        app = cached === ABSENT ? null : cached;
      }
      if (app !== null && event.seq <= app.seq) {
        // A retry of an applied event is a duplicate, not a stale event: ask before refusing.
        const previous = cached === undefined ? null : await this.store.readEvent(event.id);
        if (previous !== null) return this.duplicate(event, previous.hash, hash, previous.version);
        throw this.stale(event, app.seq);
      }

      const plan = planEvent(app, event, { platformDomain: this.options.platformDomain, now: new Date(), keyRing: this.options.keyRing });
      const outcome = await this.store.apply(plan, {
        eventId: event.id,
        eventHash: hash,
        seq: event.seq,
        expectedVersion: app?.version ?? 0,
        idempotencyTtlSeconds: this.options.idempotencyTtlSeconds,
      });
      switch (outcome.kind) {
        case 'ok':
          this.apps.set(event.app, { ...plan.app, version: outcome.version });
          this.log.info({ event: event.id, app: event.app, seq: event.seq, type: event.type, version: outcome.version, hosts: plan.invalidation.hosts.length }, 'event applied');
          return { applied: true, version: outcome.version };
        case 'duplicate':
          return this.duplicate(event, outcome.record.hash, hash, outcome.record.version);
        case 'stale':
          this.apps.delete(event.app);
          throw this.stale(event, outcome.seq);
        case 'domain_taken':
          throw new ApiError('DOMAIN_TAKEN', `${outcome.hostname} already belongs to another app`, 'domains');
        case 'conflict':
          this.apps.delete(event.app);
          this.metrics.applyConflicts.inc();
          continue;
      }
    }
    throw new ApiError('CONTENTION', `gave up after ${this.maxAttempts} concurrent updates of ${event.app}; retry with the same id`);
  }

  private duplicate(event: PlatformEvent, storedHash: string, hash: string, version: number): ApplyResult {
    if (storedHash !== hash) {
      throw new ApiError('IDEMPOTENCY_KEY_REUSED', `event id ${event.id} was already used for a different event`, 'id');
    }
    return { applied: true, version, duplicate: true };
  }

  private stale(event: PlatformEvent, appliedSeq: number): ApiError {
    return new ApiError('STALE_EVENT', `seq ${event.seq} is not greater than the last seq applied to ${event.app} (${appliedSeq}); nothing was written`, 'seq');
  }

  async getApp(name: string): Promise<AppRecord> {
    try {
      const app = await this.store.getApp(name);
      if (app === null) throw new ApiError('APP_NOT_FOUND', `no app named ${name}`);
      return app;
    } catch (err) {
      throw this.toApiError(err, 'get_app');
    }
  }

  async listApps(cursor: string | null, limit: number): Promise<AppPage> {
    try {
      return await this.store.listApps(cursor, limit);
    } catch (err) {
      throw this.toApiError(err, 'list_apps');
    }
  }

  async resolveHost(raw: string): Promise<ResolvedRoute> {
    const hostname = normalizeHostname(raw);
    if (hostname === null) throw new ApiError('INVALID_FIELD', `hostname: ${JSON.stringify(raw.slice(0, 100))} is not a DNS name`, 'hostname');
    try {
      const route = await this.store.resolveHost(hostname);
      if (route === null) throw new ApiError('ROUTE_NOT_FOUND', `no app answers on ${hostname}`);
      return route;
    } catch (err) {
      throw this.toApiError(err, 'resolve_host');
    }
  }

  async ready(): Promise<void> {
    try {
      await this.store.ping();
    } catch (err) {
      throw this.toApiError(err, 'ping');
    }
  }

  /** Anything that is not one of ours: a Redis failure (503) or a bug (500, logged). */
  toApiError(err: unknown, operation: string): ApiError {
    if (err instanceof ApiError) return err;
    if (err instanceof RecordError || err instanceof ReplyError || err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) {
      // ioredis hangs the command's arguments on a ReplyError: for the apply script, certificate records.
      const logged = err instanceof ReplyError ? { message: (err as Error).message, command: (err as { command?: { name?: string } }).command?.name } : err;
      this.log.error({ err: logged, operation }, 'unexpected store answer');
      return new ApiError('INTERNAL', 'the store answered something unexpected; see the control plane log');
    }
    this.metrics.redisErrors.inc({ operation });
    this.log.warn({ err: (err as Error).message, operation }, 'redis unavailable');
    return new ApiError('STORE_UNAVAILABLE', 'Redis is unreachable; retry with the same event id');
  }
}

/**
 * Every Redis access of the control plane: the atomic apply (commands/apply-event.lua) and
 * the reads behind the API. Keys come from proto/keys.ts only.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { KeySchema } from '../../../proto/keys.js';
import { wildcardFor } from '../../../proto/names.js';
import { encodeInvalidationOpen } from '../../../proto/invalidation.js';
import { sourcePath } from '../../../proto/source-path.js';
import {
  decodeAppRecord,
  decodeHostRecord,
  encodeOpen,
  ownerPrefix,
  type AppRecord,
  type HostRecord,
} from '../../../proto/records.js';
import type { ApplyPlan } from '../core/plan.js';

/** The .lua files stay next to their TypeScript source; compiled code runs from dist/. */
const APPLY_EVENT_LUA = readFileSync(sourcePath(import.meta.url, 'commands', 'apply-event.lua'), 'utf8');

interface ApplyCommand {
  applyEvent(numKeys: number, ...args: string[]): Promise<[string, string?]>;
}

/** The record the script stores under the event id, sealed with the version it applied. */
export interface IdempotencyRecord {
  v: 1;
  hash: string;
  app: string;
  version: number;
}

export type ApplyOutcome =
  | { kind: 'ok'; version: number }
  | { kind: 'duplicate'; record: IdempotencyRecord }
  | { kind: 'conflict' }
  | { kind: 'stale'; seq: number }
  | { kind: 'domain_taken'; hostname: string };

export interface ApplyInput {
  eventId: string;
  eventHash: string;
  seq: number;
  /** Version of the app record the plan was built from; 0 when there was none. */
  expectedVersion: number;
  idempotencyTtlSeconds: number;
}

export interface ResolvedRoute {
  hostname: string;
  /** The stored name that matched: the hostname itself or its wildcard. */
  matched: string;
  record: HostRecord;
  /** The certificate domain a router would serve for this name, if one is stored. */
  certificate: string | null;
}

export interface AppPage {
  apps: AppRecord[];
  next: string | null;
}

export class RouteStore {
  readonly keys: KeySchema;
  private readonly redis: Redis & ApplyCommand;

  constructor(redis: Redis, keys: KeySchema) {
    this.keys = keys;
    redis.defineCommand('applyEvent', { lua: APPLY_EVENT_LUA });
    this.redis = redis as Redis & ApplyCommand;
  }

  /** One round trip: the stored answer for the event id, if any, and the app as stored. */
  async readForApply(eventId: string, app: string): Promise<{ previous: IdempotencyRecord | null; app: AppRecord | null }> {
    const [previous, rawApp] = await this.redis.mget(this.keys.event(eventId), this.keys.app(app));
    return {
      previous: previous ? (JSON.parse(previous) as IdempotencyRecord) : null,
      app: rawApp ? decodeAppRecord(rawApp) : null,
    };
  }

  async readEvent(eventId: string): Promise<IdempotencyRecord | null> {
    const raw = await this.redis.get(this.keys.event(eventId));
    return raw ? (JSON.parse(raw) as IdempotencyRecord) : null;
  }

  async apply(plan: ApplyPlan, input: ApplyInput): Promise<ApplyOutcome> {
    const k = this.keys;
    const keys = [
      k.app(plan.app.app),
      k.versionKey,
      k.appsIndexKey,
      k.event(input.eventId),
      ...plan.hostWrites.map((h) => k.host(h)),
      ...plan.hostDeletes.map((h) => k.host(h)),
      ...plan.certWrites.map((c) => k.cert(c.domain)),
      ...plan.certDeletes.map((d) => k.cert(d)),
    ];
    const idempotency = encodeOpen<IdempotencyRecord>({ v: 1, hash: input.eventHash, app: plan.app.app });
    const args = [
      String(input.expectedVersion),
      String(input.seq),
      ownerPrefix(plan.app.app),
      plan.app.app,
      plan.index,
      encodeOpen(plan.app),
      plan.host && plan.hostWrites.length > 0 ? encodeOpen(plan.host) : '',
      idempotency,
      String(input.idempotencyTtlSeconds),
      k.invalidationChannel,
      encodeInvalidationOpen(plan.invalidation),
      String(plan.hostWrites.length),
      String(plan.hostDeletes.length),
      String(plan.certWrites.length),
      String(plan.certDeletes.length),
      ...plan.certWrites.map((c) => encodeOpen(c)),
    ];
    const [status, detail] = await this.redis.applyEvent(keys.length, ...keys, ...args);
    switch (status) {
      case 'OK':
        return { kind: 'ok', version: Number(detail) };
      case 'DUPLICATE':
        return { kind: 'duplicate', record: JSON.parse(detail!) as IdempotencyRecord };
      case 'CONFLICT':
        return { kind: 'conflict' };
      case 'STALE':
        return { kind: 'stale', seq: Number(detail) };
      case 'DOMAIN_TAKEN':
        return { kind: 'domain_taken', hostname: detail!.slice(k.host('').length) };
      default:
        throw new Error(`apply-event.lua answered ${String(status)}`);
    }
  }

  async getApp(name: string): Promise<AppRecord | null> {
    const raw = await this.redis.get(this.keys.app(name));
    if (raw === null) return null;
    const record = decodeAppRecord(raw);
    return record.status === 'deleted' ? null : record;
  }

  /** Apps in name order after `cursor` (exclusive); `next` is the cursor of the next page. */
  async listApps(cursor: string | null, limit: number): Promise<AppPage> {
    const min = cursor === null ? '-' : `(${cursor}`;
    const names = await this.redis.zrangebylex(this.keys.appsIndexKey, min, '+', 'LIMIT', 0, limit + 1);
    const page = names.slice(0, limit);
    const raws = page.length > 0 ? await this.redis.mget(...page.map((n) => this.keys.app(n))) : [];
    const apps: AppRecord[] = [];
    for (const raw of raws) {
      if (raw === null) continue;
      const record = decodeAppRecord(raw);
      if (record.status !== 'deleted') apps.push(record);
    }
    return { apps, next: names.length > limit ? (page[page.length - 1] ?? null) : null };
  }

  /** Exactly what a router resolves: the exact name, else its one-label wildcard, in one MGET. */
  async resolveHost(hostname: string): Promise<ResolvedRoute | null> {
    const wildcard = wildcardFor(hostname);
    const names = wildcard === null ? [hostname] : [hostname, wildcard];
    const raws = await this.redis.mget(
      ...names.map((n) => this.keys.host(n)),
      ...names.map((n) => this.keys.cert(n)),
    );
    const hostIndex = raws[0] !== null ? 0 : wildcard !== null && raws[1] !== null ? 1 : -1;
    if (hostIndex < 0) return null;
    const certIndex = raws[names.length] !== null ? 0 : wildcard !== null && raws[names.length + 1] !== null ? 1 : -1;
    return {
      hostname,
      matched: names[hostIndex]!,
      record: decodeHostRecord(raws[hostIndex]!),
      certificate: certIndex < 0 ? null : names[certIndex]!,
    };
  }

  /** Records a hook signature; false when it was already seen inside the TTL (a replay). */
  async claimSignature(signature: string, ttlSeconds: number): Promise<boolean> {
    const ok = await this.redis.set(this.keys.signature(signature), '1', 'EX', ttlSeconds, 'NX');
    return ok === 'OK';
  }

  async globalVersion(): Promise<number> {
    return Number((await this.redis.get(this.keys.versionKey)) ?? 0);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }
}

/**
 * The router's only read of the routing records: one round trip per cache miss, resolving a
 * hostname exactly as the control plane's RouteStore.resolveHost does (the exact name wins,
 * then its one-label wildcard).
 *
 * The connection must fail fast while Redis is down (proto/redis-connection.ts: no offline
 * queue, bounded command time): a lookup that hangs holds a request for as long.
 */
import type { Redis } from 'ioredis';
import type { KeySchema } from '../../../proto/keys.js';
import { wildcardFor } from '../../../proto/names.js';
import { decodeHostRecord, RecordError, type HostRecord } from '../../../proto/records.js';

export interface HostMatch {
  record: HostRecord;
  /** The stored name that answered: the hostname itself or its wildcard `*.rest`. */
  matched: string;
}

/** What the route cache reads through; tests wrap it to count or delay lookups. */
export interface HostSource {
  find(hostname: string): Promise<HostMatch | null>;
  /**
   * Many names in one round trip (the cache's refresh-ahead), each resolved as `find` would:
   * per name its match, null, or the error that name alone met (an unreadable record). Rejects
   * when the round trip fails. Without it the cache reads the names one `find` at a time.
   */
  findMany?(hostnames: readonly string[]): Promise<Array<HostMatch | null | Error>>;
}

/**
 * A stored record this router cannot read (corrupt, or a schema from a newer control plane).
 * Not "not found": answering 404 and caching that would hide a live app, so callers treat it
 * like a store failure (serve what they had, else 503).
 */
export class UnreadableRecordError extends RecordError {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`${key}: ${reason}`);
  }
}

export class HostStore implements HostSource {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
  ) {}

  async lookup(hostname: string): Promise<HostRecord | null> {
    const match = await this.find(hostname);
    return match === null ? null : match.record;
  }

  async find(hostname: string): Promise<HostMatch | null> {
    const wildcard = wildcardFor(hostname);
    if (wildcard === null) {
      const raw = await this.redis.get(this.keys.host(hostname));
      return raw === null ? null : this.match(hostname, raw);
    }
    const [exact, wild] = await this.redis.mget(this.keys.host(hostname), this.keys.host(wildcard));
    // An unreadable exact record is not skipped for the wildcard: that would route elsewhere.
    if (exact !== null && exact !== undefined) return this.match(hostname, exact);
    if (wild !== null && wild !== undefined) return this.match(wildcard, wild);
    return null;
  }

  async findMany(hostnames: readonly string[]): Promise<Array<HostMatch | null | Error>> {
    // Names under one wildcard share its key: each key is read once.
    const keys: string[] = [];
    const slots = new Map<string, number>();
    const slot = (name: string): number => {
      let i = slots.get(name);
      if (i === undefined) {
        i = keys.length;
        slots.set(name, i);
        keys.push(this.keys.host(name));
      }
      return i;
    };
    const plan = hostnames.map((hostname) => {
      const wildcard = wildcardFor(hostname);
      return { hostname, exact: slot(hostname), wildcard, wild: wildcard === null ? -1 : slot(wildcard) };
    });
    const raws = keys.length === 0 ? [] : await this.redis.mget(keys);
    return plan.map(({ hostname, exact, wildcard, wild }) => {
      try {
        // As in find: an unreadable exact record is not skipped for the wildcard.
        const raw = raws[exact];
        if (raw !== null && raw !== undefined) return this.match(hostname, raw);
        const rawWild = wild < 0 ? null : raws[wild];
        if (wildcard !== null && rawWild !== null && rawWild !== undefined) return this.match(wildcard, rawWild);
        return null;
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    });
  }

  private match(name: string, raw: string): HostMatch {
    try {
      return { record: decodeHostRecord(raw), matched: name };
    } catch (err) {
      throw new UnreadableRecordError(this.keys.host(name), err instanceof Error ? err.message : String(err));
    }
  }
}

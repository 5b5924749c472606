/**
 * The Redis key schema. Every service builds its keys here and nowhere else, so a prefix
 * change or a new record type is one edit, and `REDIS_PREFIX` lets several platforms (or
 * test runs) share one Redis without seeing each other.
 *
 * | key                      | type   | written by    | read by                  |
 * |--------------------------|--------|---------------|--------------------------|
 * | `<p>version`             | int    | control plane | routers (gap detection)  |
 * | `<p>apps`                | zset   | control plane | control plane (listing)  |
 * | `<p>app:<app>`           | string | control plane | control plane            |
 * | `<p>host:<hostname>`     | string | control plane | routers (one GET/lookup) |
 * | `<p>cert:<domain>`       | string | control plane | routers (SNI)            |
 * | `<p>event:<event id>`    | string | control plane | control plane (idempotency, with TTL) |
 * | `<p>sig:<signature>`     | string | control plane | control plane (replay guard, with TTL) |
 * | `<p>acme:<token>`        | string | control plane | routers (HTTP-01 answer, with TTL) |
 * | `<p>tls-ticket-key:<period>:<epoch>` | string | routers | routers (sealed TLS ticket key, with TTL) |
 * | `<p>invalidations`       | channel| control plane | routers                  |
 * | `<p>routers`             | zset   | routers (heartbeat) | control plane (fleet view): id → last beat ms |
 * | `<p>router:<id>`         | string | routers (heartbeat, with TTL) | control plane (fleet.ts record) |
 */
export class KeySchema {
  readonly prefix: string;
  readonly versionKey: string;
  readonly appsIndexKey: string;
  readonly invalidationChannel: string;

  constructor(prefix: string) {
    this.prefix = prefix;
    this.versionKey = `${prefix}version`;
    this.appsIndexKey = `${prefix}apps`;
    this.invalidationChannel = `${prefix}invalidations`;
    this.routersIndexKey = `${prefix}routers`;
  }

  readonly routersIndexKey: string;

  /** `id` from proto/fleet.ts `routerId` (host:pid), never from a request. */
  router(id: string): string {
    return `${this.prefix}router:${id}`;
  }

  app(name: string): string {
    return `${this.prefix}app:${name}`;
  }

  /** `hostname` is already normalized (see names.ts); wildcards are stored as `*.example.org`. */
  host(hostname: string): string {
    return `${this.prefix}host:${hostname}`;
  }

  cert(domain: string): string {
    return `${this.prefix}cert:${domain}`;
  }

  event(id: string): string {
    return `${this.prefix}event:${id}`;
  }

  signature(sig: string): string {
    return `${this.prefix}sig:${sig}`;
  }

  /** `token` already checked by proto/acme.ts `isValidAcmeToken`; the value is the key authorization. */
  acmeChallenge(token: string): string {
    return `${this.prefix}acme:${token}`;
  }

  /**
   * The TLS session ticket key of one time window [epoch × periodMs, (epoch + 1) × periodMs),
   * written by the first router that needs it (SET NX) and sealed (proto/ticket-key.ts). The
   * period is part of the name: routers configured with different periods (during a rolling
   * change of TLS_TICKET_KEY_ROTATE) number their windows differently and must not mistake
   * each other's keys for their own.
   */
  ticketKey(periodMs: number, epoch: number): string {
    return `${this.prefix}tls-ticket-key:${periodMs}:${epoch}`;
  }
}

export const DEFAULT_PREFIX = 'rt:';

/** Prefixes end up inside every key: keep them to characters that need no quoting anywhere. */
export function isValidPrefix(prefix: string): boolean {
  return /^[A-Za-z0-9_.:{}-]{0,64}$/.test(prefix);
}

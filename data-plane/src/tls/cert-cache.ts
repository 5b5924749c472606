/**
 * Per-worker cache of built SecureContexts by SNI name, kept current by the invalidation
 * channel (the `certs` of each message), modelled on the route cache:
 *
 * - Positive entries in a bounded LRU (CERT_CACHE_MAX); unknown names in a separate LRU of
 *   the same size for CERT_NEGATIVE_TTL, so a flood of random SNI names evicts only other
 *   unknown names, never a real certificate.
 * - One lookup per cold name however many handshakes wait for it (single flight).
 * - An invalidation or flush that names a lookup's name or its wildcard *detaches* the
 *   lookup: its answer still reaches the handshakes already waiting (it was current when
 *   read) but is not stored, and later handshakes start a new lookup (docs/ARCHITECTURE.md,
 *   "The race it guards against").
 * - A wildcard domain reaches every SNI name resolved through it via a reverse index
 *   (domain → names), kept in step with the LRU by its dispose hook. The same index bounds
 *   the expiry gauge: one label per cached domain.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { isWildcard, wildcardFor } from '../../../proto/names.js';
import type { RouterMetrics } from '../metrics.js';
import { UnusableCertError, type CertSource, type LoadedCert } from './cert-store.js';

export interface CertCacheOptions {
  source: CertSource;
  max: number;
  negativeTtlMs: number;
  metrics: RouterMetrics;
  log: Logger;
  /** Milliseconds; default Date.now (also used for the expiry gauge). */
  clock?: () => number;
}

interface Lookup {
  name: string;
  promise: Promise<LoadedCert | null>;
  detached: boolean;
}

const DAY_MS = 86_400_000;

export class CertCache {
  private readonly source: CertSource;
  private readonly negativeTtlMs: number;
  private readonly metrics: RouterMetrics;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly positive: LRUCache<string, LoadedCert>;
  /** name → when it stops being known as unknown. */
  private readonly negative: LRUCache<string, number>;
  private readonly byDomain = new Map<string, Set<string>>();
  /** notAfter of each stored domain with a cached name: the expiry gauge is computed from it at each scrape. */
  private readonly expiry = new Map<string, number>();
  private readonly inflight = new Map<string, Lookup>();
  private readonly counted: { hit: () => void; miss: () => void; negative: () => void };

  constructor(options: CertCacheOptions) {
    this.source = options.source;
    this.negativeTtlMs = options.negativeTtlMs;
    this.metrics = options.metrics;
    this.log = options.log;
    this.clock = options.clock ?? Date.now;
    this.metrics.certExpirySource = () => {
      const now = this.clock();
      for (const [domain, notAfterMs] of this.expiry) this.metrics.certExpiryDays.set({ domain }, Math.floor((notAfterMs - now) / DAY_MS));
    };
    this.positive = new LRUCache({ max: options.max, dispose: (cert, name) => this.unindex(cert.domain, name) });
    this.negative = new LRUCache({ max: options.max });
    const c = options.metrics.certCache;
    const hit = c.labels('hit');
    const miss = c.labels('miss');
    const negative = c.labels('negative');
    this.counted = { hit: () => hit.inc(), miss: () => miss.inc(), negative: () => negative.inc() };
  }

  get size(): number {
    return this.positive.size;
  }

  /** Synchronous: the certificate, `null` when known to have none, `undefined` when a lookup is needed. */
  get(name: string): LoadedCert | null | undefined {
    const cert = this.positive.get(name);
    if (cert !== undefined) {
      this.counted.hit();
      return cert;
    }
    const until = this.negative.get(name);
    if (until !== undefined) {
      if (until > this.clock()) {
        this.counted.negative();
        return null;
      }
      this.negative.delete(name);
    }
    this.counted.miss();
    return undefined;
  }

  /** Reads Redis once for `name`, whoever else is waiting; rejects when Redis or the record fails. */
  load(name: string): Promise<LoadedCert | null> {
    const running = this.inflight.get(name);
    if (running !== undefined) return running.promise;
    const lookup: Lookup = { name, promise: undefined as unknown as Promise<LoadedCert | null>, detached: false };
    lookup.promise = this.source.find(name).then(
      (cert) => {
        this.metrics.certLookups.inc({ outcome: cert === null ? 'not_found' : 'found' });
        this.settle(lookup, cert);
        return cert;
      },
      (err: unknown) => {
        this.metrics.certLookups.inc({ outcome: 'error' });
        // An unusable record is remembered as absent (no Redis read per handshake) under the
        // same race rule as any answer; a Redis failure is not remembered at all.
        if (err instanceof UnusableCertError) this.settle(lookup, null);
        else if (this.inflight.get(name) === lookup) this.inflight.delete(name);
        throw err;
      },
    );
    this.inflight.set(name, lookup);
    return lookup.promise;
  }

  private rememberAbsent(name: string): void {
    this.negative.set(name, this.clock() + this.negativeTtlMs);
  }

  /** `domains`: the `certs` of an invalidation message (exact names and `*.rest` wildcards). */
  invalidate(domains: readonly string[]): void {
    for (const domain of domains) {
      // Dropping a positive entry unindexes it (dispose), so iterate over a copy.
      const names = this.byDomain.get(domain);
      if (names !== undefined) for (const name of [...names]) this.positive.delete(name);
      this.positive.delete(domain);
      // A new wildcard may cover any name known as unknown: forget them all (cheap, bounded).
      if (isWildcard(domain)) this.negative.clear();
      else this.negative.delete(domain);
      for (const lookup of this.inflight.values()) {
        if (lookup.name === domain || wildcardFor(lookup.name) === domain) this.detach(lookup);
      }
    }
  }

  flush(): void {
    this.positive.clear();
    this.negative.clear();
    for (const lookup of [...this.inflight.values()]) this.detach(lookup);
  }

  private detach(lookup: Lookup): void {
    lookup.detached = true;
    if (this.inflight.get(lookup.name) === lookup) this.inflight.delete(lookup.name);
  }

  private settle(lookup: Lookup, cert: LoadedCert | null): void {
    if (lookup.detached) return;
    this.inflight.delete(lookup.name);
    if (cert === null) {
      this.rememberAbsent(lookup.name);
      return;
    }
    this.positive.set(lookup.name, cert);
    let names = this.byDomain.get(cert.domain);
    if (names === undefined) this.byDomain.set(cert.domain, (names = new Set()));
    names.add(lookup.name);
    this.expiry.set(cert.domain, cert.notAfterMs);
    this.log.debug({ sni: lookup.name, domain: cert.domain, fingerprint256: cert.fingerprint256 }, 'certificate loaded');
  }

  private unindex(domain: string, name: string): void {
    const names = this.byDomain.get(domain);
    if (names === undefined) return;
    names.delete(name);
    if (names.size === 0) {
      this.byDomain.delete(domain);
      this.expiry.delete(domain);
      this.metrics.certExpiryDays.remove({ domain });
    }
  }
}

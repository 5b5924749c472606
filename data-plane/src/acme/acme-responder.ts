/**
 * The answers to ACME HTTP-01 challenges, read from `acme:<token>` (written by the control
 * plane) through a small cache: a CA fetches a token a few times from several vantage points
 * within seconds, and a flood of made-up tokens costs at most one GET per distinct token per
 * second. Answers live ~1 s, so a published or deleted challenge is seen within a second.
 */
import { LRUCache } from 'lru-cache';
import type { KeySchema } from '../../../proto/keys.js';

export interface AcmeStoreReader {
  get(key: string): Promise<string | null>;
}

export interface AcmeResponderOptions {
  redis: AcmeStoreReader;
  keys: KeySchema;
  /** How long an answer (found or not) is reused. Default 1000 ms. */
  ttlMs?: number;
  /** Tokens remembered. Default 1000: enough for every challenge in flight, small under a flood. */
  max?: number;
}

/** LRU values cannot be null: this stands for "no such token". */
const UNKNOWN = '';

export class AcmeResponder {
  private readonly redis: AcmeStoreReader;
  private readonly keys: KeySchema;
  private readonly cache: LRUCache<string, string>;
  /** Concurrent requests for one token share one GET. */
  private readonly inFlight = new Map<string, Promise<string | null>>();

  constructor(options: AcmeResponderOptions) {
    this.redis = options.redis;
    this.keys = options.keys;
    this.cache = new LRUCache({ max: options.max ?? 1000, ttl: options.ttlMs ?? 1000, ttlAutopurge: false });
  }

  /**
   * The key authorization for `token` (already checked with isValidAcmeToken), null when no
   * challenge is pending; synchronous when cached. Rejects when Redis cannot be reached.
   */
  lookup(token: string): string | null | Promise<string | null> {
    const cached = this.cache.get(token);
    if (cached !== undefined) return cached === UNKNOWN ? null : cached;
    let pending = this.inFlight.get(token);
    if (pending === undefined) {
      pending = this.fetch(token);
      this.inFlight.set(token, pending);
    }
    return pending;
  }

  private async fetch(token: string): Promise<string | null> {
    try {
      const value = await this.redis.get(this.keys.acmeChallenge(token));
      // The control plane never writes an empty value; one would be answered as unknown.
      this.cache.set(token, value ?? UNKNOWN);
      return value === null || value === UNKNOWN ? null : value;
    } finally {
      this.inFlight.delete(token);
    }
  }
}

/**
 * The seam between routing (where a hostname goes) and proxying (getting it there).
 */
import type { HostRecord } from '../../../proto/records.js';

/** Redis cannot be reached and nothing usable is cached for the name: answer 503 STORE_UNAVAILABLE. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

export interface RouteLookup {
  /**
   * `hostname` is normalized (proto/names.ts `hostFromHeader`). Answers synchronously when
   * the cache can (no promise allocated on a hit); `null` means no app answers on the name.
   * Throws or rejects with StoreUnavailableError when Redis is down and nothing is cached.
   */
  resolve(hostname: string): HostRecord | null | Promise<HostRecord | null>;
}

/**
 * The shared token (LOG_SHIPPER_TOKEN), checked for routers' HELLO and tail clients' bearer
 * header alike. Compared as SHA-256 digests with timingSafeEqual against every configured
 * token (no early exit), so neither the token's content nor which list entry matched leaks
 * through timing, whatever the lengths.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export class TokenSet {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    if (tokens.length === 0) throw new Error('at least one token is required');
    this.digests = tokens.map(digest);
  }

  accepts(presented: string): boolean {
    const d = digest(presented);
    let ok = false;
    for (const known of this.digests) ok = timingSafeEqual(d, known) || ok;
    return ok;
  }

  /** The token of an `Authorization: Bearer <token>` header, or null when the header is absent or not that shape. */
  static bearer(header: string | undefined): string | null {
    if (header === undefined) return null;
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    return m ? m[1]! : null;
  }
}

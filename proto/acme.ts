/**
 * ACME HTTP-01 (RFC 8555 §8.3), the part both services agree on: the path a CA fetches, what
 * a token may be, and what the control plane stores under `acme:<token>` (keys.ts) for every
 * router to answer with — the key authorization itself, as plain text, with a Redis TTL.
 */

export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';

export const ACME_TOKEN_MAX = 256;

/** RFC 8555 tokens are base64url; the bound keeps a key name and a cache entry small. */
const TOKEN_RE = /^[A-Za-z0-9_-]{1,256}$/;

export function isValidAcmeToken(token: string): boolean {
  return TOKEN_RE.test(token);
}

/**
 * ACME HTTP-01 challenges as the platform's ACME client publishes them: the one validator
 * (the REST front end only decodes), and the service that stores them for every router.
 */
import { ACME_TOKEN_MAX, isValidAcmeToken } from '../../../proto/acme.js';
import { ApiError, invalidField } from '../errors.js';
import type { AcmeStore } from '../store/acme-store.js';
import { integer, object, string } from './fields.js';

export const ACME_TTL_DEFAULT_SECONDS = 600;
export const ACME_TTL_MAX_SECONDS = 86_400;
/** A token, a dot and a base64url JWK thumbprint (43 characters for SHA-256; longer hashes allowed). */
const KEY_AUTHORIZATION_RE = /^([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]{43,}$/;
const KEY_AUTHORIZATION_MAX = ACME_TOKEN_MAX + 1 + 128;

export interface AcmeChallenge {
  token: string;
  keyAuthorization: string;
  ttlSeconds: number;
}

export function validateAcmeToken(token: unknown): string {
  if (typeof token !== 'string' || !isValidAcmeToken(token)) {
    throw invalidField('token', `must be 1 to ${ACME_TOKEN_MAX} characters of A-Z a-z 0-9 _ - (an RFC 8555 base64url token)`);
  }
  return token;
}

/** Throws ApiError (INVALID_FIELD, UNKNOWN_FIELD) naming the first bad field. */
export function validateAcmeChallenge(token: unknown, body: unknown): AcmeChallenge {
  const valid = validateAcmeToken(token);
  const obj = object(body, 'body', ['key_authorization', 'ttl_seconds']);
  const keyAuthorization = string(obj['key_authorization'], 'key_authorization', KEY_AUTHORIZATION_MAX);
  const m = KEY_AUTHORIZATION_RE.exec(keyAuthorization);
  if (m === null) throw invalidField('key_authorization', 'must be "<token>.<base64url JWK thumbprint>"');
  if (m[1] !== valid) throw invalidField('key_authorization', 'must start with the token of the URL followed by a dot');
  const ttlSeconds = obj['ttl_seconds'] === undefined ? ACME_TTL_DEFAULT_SECONDS : integer(obj['ttl_seconds'], 'ttl_seconds', 1, ACME_TTL_MAX_SECONDS);
  return { token: valid, keyAuthorization, ttlSeconds };
}

export class AcmeChallengeService {
  constructor(
    private readonly store: AcmeStore,
    /** Maps store failures like every other call (503 STORE_UNAVAILABLE). */
    private readonly toApiError: (err: unknown, operation: string) => ApiError,
  ) {}

  async put(token: unknown, body: unknown, now: Date = new Date()): Promise<{ token: string; expires_at: string }> {
    const challenge = validateAcmeChallenge(token, body);
    try {
      await this.store.put(challenge.token, challenge.keyAuthorization, challenge.ttlSeconds);
    } catch (err) {
      throw this.toApiError(err, 'acme_put');
    }
    return { token: challenge.token, expires_at: new Date(now.getTime() + challenge.ttlSeconds * 1000).toISOString() };
  }

  async delete(token: unknown): Promise<{ deleted: boolean }> {
    const valid = validateAcmeToken(token);
    try {
      return { deleted: await this.store.delete(valid) };
    } catch (err) {
      throw this.toApiError(err, 'acme_delete');
    }
  }
}

/**
 * Authentication shared by REST and gRPC: a bearer token from CONTROL_PLANE_TOKENS, or a
 * signed hook `X-Platform-Signature: t=<unix s>,v1=<hex HMAC-SHA256(HOOK_SECRET, "<t>.<raw body>")>`.
 *
 * Comparisons are constant-time over fixed-length digests, signatures are checked over the
 * raw bytes received (never a re-serialization), and a signature is accepted once: its
 * digest is claimed in Redis for longer than the timestamp window, so a captured request
 * cannot be replayed, by this instance or any other.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { SIGNATURE_HEADER, SIGNATURE_WINDOW_SECONDS } from '../../proto/hook-signature.js';
import { ApiError } from './errors.js';
import type { ControlPlaneMetrics } from './metrics.js';

export { SIGNATURE_HEADER, SIGNATURE_WINDOW_SECONDS, signBody } from '../../proto/hook-signature.js';
const SIGNATURE_RE = /^t=([0-9]{1,12}),v1=([0-9a-f]{64})$/;

export interface AuthOptions {
  tokens: readonly string[];
  hookSecret: string | undefined;
}

export interface Presented {
  authorization: string | undefined;
  signature: string | undefined;
}

interface SignatureClaims {
  claimSignature(signature: string, ttlSeconds: number): Promise<boolean>;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}


export class Authenticator {
  private readonly tokenDigests: Buffer[];
  private readonly hookSecret: string | undefined;

  constructor(
    options: AuthOptions,
    private readonly claims: SignatureClaims,
    private readonly metrics: ControlPlaneMetrics,
  ) {
    this.tokenDigests = options.tokens.map(digest);
    this.hookSecret = options.hookSecret;
  }

  private refuse(reason: string, message: string): ApiError {
    this.metrics.authFailures.inc({ reason });
    return new ApiError('UNAUTHENTICATED', message);
  }

  /**
   * Checks what can be checked before the body is read. Returns true when a signature still
   * has to be verified against the body; throws when the request can already be refused.
   */
  precheck(p: Presented): boolean {
    if (p.authorization !== undefined) {
      const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(p.authorization);
      if (!m) throw this.refuse('malformed_authorization', 'Authorization must be "Bearer <token>"');
      const presented = digest(m[1]!);
      let ok = false;
      for (const d of this.tokenDigests) ok = timingSafeEqual(presented, d) || ok;
      if (!ok) throw this.refuse('bad_token', 'the bearer token is not valid');
      return false;
    }
    if (p.signature !== undefined) {
      if (this.hookSecret === undefined) throw this.refuse('signature_disabled', 'signed hooks are not enabled (HOOK_SECRET is not set); use a bearer token');
      const m = SIGNATURE_RE.exec(p.signature);
      if (!m) throw this.refuse('malformed_signature', `${SIGNATURE_HEADER} must be "t=<unix seconds>,v1=<64 hex chars>"`);
      const skew = Math.abs(Math.floor(Date.now() / 1000) - Number(m[1]));
      if (skew > SIGNATURE_WINDOW_SECONDS) {
        throw this.refuse('signature_expired', `the signature timestamp is ${skew}s away from now (window ${SIGNATURE_WINDOW_SECONDS}s): sign each request when sending it`);
      }
      return true;
    }
    throw this.refuse('missing', 'send Authorization: Bearer <token> or an X-Platform-Signature header');
  }

  /** Verifies a signature over the raw body and claims it against replays. */
  async verifySignature(signature: string, rawBody: Buffer): Promise<void> {
    const m = SIGNATURE_RE.exec(signature)!;
    const expected = createHmac('sha256', this.hookSecret!).update(`${m[1]}.`).update(rawBody).digest();
    const given = Buffer.from(m[2]!, 'hex');
    if (!timingSafeEqual(expected, given)) throw this.refuse('bad_signature', 'the signature does not match the body');
    const fresh = await this.claims.claimSignature(m[2]!, 2 * SIGNATURE_WINDOW_SECONDS);
    if (!fresh) throw this.refuse('replayed', 'this signature was already used: sign each request anew');
  }

  async authenticate(p: Presented, rawBody: Buffer): Promise<void> {
    if (this.precheck(p)) await this.verifySignature(p.signature!, rawBody);
  }
}

/**
 * ACME HTTP-01 challenges in Redis: `acme:<token>` holds the key authorization as plain text,
 * expiring with the challenge, so routers answer it with one GET and nothing to decode.
 */
import type { Redis } from 'ioredis';
import type { KeySchema } from '../../../proto/keys.js';

export class AcmeStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
  ) {}

  async put(token: string, keyAuthorization: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.keys.acmeChallenge(token), keyAuthorization, 'EX', ttlSeconds);
  }

  /** False when there was nothing to delete (never published, expired, or already deleted). */
  async delete(token: string): Promise<boolean> {
    return (await this.redis.del(this.keys.acmeChallenge(token))) > 0;
  }
}

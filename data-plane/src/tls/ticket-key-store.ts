/**
 * How every router of the fleet agrees on one session ticket key per time window without a
 * coordinator: the key of window `epoch` lives at `ticketKey(period, epoch)`; whoever finds
 * it missing offers one with SET NX, and everyone uses what is stored (the offer if it won,
 * else the winner's, read back). Two round trips at most, twice per window per worker.
 *
 * A record lives two periods: it is created at the earliest a little before its window
 * starts (the prefetch lead, at most a quarter period) and read until the window ends, so
 * two periods cover it with room for clock skew, and a key is gone from Redis soon after it
 * stops being used (a later leak of Redis and KEY_ENCRYPTION_KEY reveals no old window).
 */
import type { Redis } from 'ioredis';
import type { KeyRing } from '../../../proto/key-envelope.js';
import type { KeySchema } from '../../../proto/keys.js';
import { TicketKeyError, openTicketKey, sealTicketKey } from '../../../proto/ticket-key.js';

export class TicketKeyStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
    private readonly ring: KeyRing,
    private readonly periodMs: number,
  ) {}

  /**
   * The key of `epoch`: the stored one, else `candidate` if this call stores it first.
   * Rejects when Redis fails (the command timeout bounds it) or a record does not open
   * (TicketKeyError: sealed with a key-encryption key this router does not hold, or altered).
   */
  async obtain(epoch: number, candidate: Buffer): Promise<Buffer> {
    const name = this.keys.ticketKey(this.periodMs, epoch);
    const existing = await this.redis.get(name);
    if (existing !== null) return openTicketKey(existing, this.periodMs, epoch, this.ring);
    const stored = await this.redis.set(name, sealTicketKey(candidate, this.periodMs, epoch, this.ring), 'PX', 2 * this.periodMs, 'NX');
    if (stored === 'OK') return candidate;
    const winner = await this.redis.get(name);
    // Only a flush or a failover between the two commands gets here: try again later.
    if (winner === null) throw new TicketKeyError(`the ticket key of epoch ${epoch} vanished while being created`);
    return openTicketKey(winner, this.periodMs, epoch, this.ring);
  }
}

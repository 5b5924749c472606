/**
 * What each router (by the id of its HELLO) had acknowledged OK, so a batch resent after a
 * lost ack is acknowledged without being written twice.
 *
 * Per router: `high`, the highest seq acknowledged OK, and `holes`, the seqs below it that
 * were not (UNAVAILABLE, still to be resent): with pipelining, batch 6 may succeed while 5
 * failed, and 5's resend must then be written, not skipped as "≤ 6". A seq is done when it
 * is ≤ high and not a hole. Seqs never seen (batches the router dropped from its spool)
 * below high would count as done — harmless, since a dropped batch is never sent.
 * `inflight` covers a resend arriving on a new connection while the first copy is still
 * being written on the old one: it waits for that outcome instead of writing in parallel.
 *
 * Memory: the state is lost on restart (a resend to a restarted shipper is written again:
 * delivery is at least once), bounded to MAX_ROUTERS router ids (LRU) and MAX_HOLES holes.
 */
import { LRUCache } from 'lru-cache';

const MAX_ROUTERS = 10_000;
const MAX_HOLES = 10_000;

export class RouterSeqs {
  private high = -1;
  private readonly holes = new Set<number>();
  readonly inflight = new Map<number, Promise<void>>();

  isDone(seq: number): boolean {
    return seq <= this.high && !this.holes.has(seq);
  }

  settle(seq: number, ok: boolean): void {
    if (ok) {
      this.holes.delete(seq);
      if (seq > this.high) this.high = seq;
      return;
    }
    this.holes.add(seq);
    if (this.holes.size > MAX_HOLES) {
      // Forget the oldest hole: its batch was long since dropped by its router's spool.
      let oldest = Infinity;
      for (const h of this.holes) if (h < oldest) oldest = h;
      this.holes.delete(oldest);
    }
  }
}

export class SeqLedger {
  private readonly routers = new LRUCache<string, RouterSeqs>({ max: MAX_ROUTERS });

  of(router: string): RouterSeqs {
    let seqs = this.routers.get(router);
    if (seqs === undefined) {
      seqs = new RouterSeqs();
      this.routers.set(router, seqs);
    }
    return seqs;
  }
}

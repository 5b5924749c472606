/**
 * Where accepted lines meet live tails: subscribers by app in a Map, so an app nobody tails
 * costs one lookup per batch; and, without the file backend, the in-memory history rings.
 * Lines of the unrouted section are never served.
 */
import { UNROUTED_SECTION } from '../../../proto/log-batch.js';
import type { AppLines } from '../backends/backend.js';
import type { ShipperMetrics } from '../metrics.js';
import type { LineRings } from './line-ring.js';
import type { Subscriber } from './subscriber.js';

export class TailHub {
  private readonly subscribers = new Map<string, Set<Subscriber>>();

  constructor(
    private readonly metrics: ShipperMetrics,
    /** null when the history comes from the files. */
    readonly rings: LineRings | null,
  ) {}

  publish(apps: readonly AppLines[]): void {
    for (const a of apps) {
      if (a.app === UNROUTED_SECTION) continue;
      this.rings?.append(a.app, a.data, a.lines);
      const subs = this.subscribers.get(a.app);
      if (subs === undefined) continue;
      for (const s of subs) s.push(a.data, a.lines);
    }
  }

  subscribe(app: string, subscriber: Subscriber): () => void {
    let subs = this.subscribers.get(app);
    if (subs === undefined) {
      subs = new Set();
      this.subscribers.set(app, subs);
    }
    subs.add(subscriber);
    this.metrics.tailSubscribers.inc();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.metrics.tailSubscribers.dec();
      const current = this.subscribers.get(app);
      if (current === undefined) return;
      current.delete(subscriber);
      if (current.size === 0) this.subscribers.delete(app);
    };
  }

  /** Ends every tail (shutdown). */
  closeAll(): void {
    for (const subs of this.subscribers.values()) for (const s of subs) s.close();
  }
}

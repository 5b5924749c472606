/**
 * Batches not yet delivered, oldest first, bounded in bytes: when a new batch would go over
 * the bound, the oldest are dropped (and reported by app) so the newest survive an outage.
 */
import { Deque } from './deque.js';
import type { BatchSummary } from './drop-report.js';

export interface SpoolEntry extends BatchSummary {
  readonly bytes: number;
}

export class Spool<E extends SpoolEntry> {
  private readonly entries = new Deque<E>();
  private total = 0;

  constructor(
    private readonly limit: number,
    private readonly onDrop: (entry: E) => void,
  ) {}

  get bytes(): number {
    return this.total;
  }

  get length(): number {
    return this.entries.length;
  }

  /** Adds `entry` last, first dropping the oldest entries it would not fit beside. The newest is always kept. */
  add(entry: E): void {
    while (this.entries.length > 0 && this.total + entry.bytes > this.limit) {
      const oldest = this.entries.shift()!;
      this.total -= oldest.bytes;
      this.onDrop(oldest);
    }
    this.entries.push(entry);
    this.total += entry.bytes;
  }

  at(i: number): E | undefined {
    return this.entries.at(i);
  }

  shift(): E | undefined {
    const entry = this.entries.shift();
    if (entry !== undefined) this.total -= entry.bytes;
    return entry;
  }

  /** Removes `entry`, searched from the front (where delivered entries are). False when not there. */
  remove(entry: E): boolean {
    for (let i = 0; i < this.entries.length; i++) {
      if (this.entries.at(i) === entry) {
        this.entries.removeAt(i);
        this.total -= entry.bytes;
        return true;
      }
    }
    return false;
  }
}

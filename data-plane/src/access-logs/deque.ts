/**
 * A FIFO on a growable ring buffer. The spool can hold hundreds of thousands of small
 * batches while the shipper is down; Array#shift would move all of them on every ack.
 */
export class Deque<T> {
  private items: Array<T | undefined> = new Array<T | undefined>(16);
  private head = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(item: T): void {
    if (this.size === this.items.length) this.grow();
    this.items[(this.head + this.size) % this.items.length] = item;
    this.size++;
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.size--;
    return item;
  }

  /** The i-th item from the front (0 = oldest), or undefined past the end. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.size) return undefined;
    return this.items[(this.head + i) % this.items.length];
  }

  /** Removes the i-th item; costs i moves, so meant for items near the front. */
  removeAt(i: number): T | undefined {
    if (i < 0 || i >= this.size) return undefined;
    const cap = this.items.length;
    const item = this.items[(this.head + i) % cap];
    for (let j = i; j > 0; j--) this.items[(this.head + j) % cap] = this.items[(this.head + j - 1) % cap];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % cap;
    this.size--;
    return item;
  }

  clear(): void {
    this.items = new Array<T | undefined>(16);
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.items.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.items[(this.head + i) % this.items.length];
    this.items = next;
    this.head = 0;
  }
}

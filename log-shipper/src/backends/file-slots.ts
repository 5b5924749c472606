/**
 * A hard bound on the log files open at once (LOG_MAX_OPEN_FILES): a file takes a slot
 * before open(2) and gives it back after close(2), so even files evicted from the LRU but
 * still finishing their writes count. When every slot is taken, `onStarved` asks the owner
 * to close an idle file; a slot given back goes straight to the oldest waiter.
 */
export class FileSlots {
  private used = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(
    readonly max: number,
    private readonly onStarved: () => void,
  ) {}

  get inUse(): number {
    return this.used;
  }

  get hasWaiters(): boolean {
    return this.waiters.length > 0;
  }

  acquire(): Promise<void> | null {
    if (this.used < this.max) {
      this.used++;
      return null;
    }
    const wait = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.onStarved();
    return wait;
  }

  release(): void {
    const next = this.waiters.shift();
    if (next !== undefined) next();
    else this.used--;
  }
}

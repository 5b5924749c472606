/**
 * Per-app cap on requests in flight in this worker, so one flooded app answers 503
 * BACKLOG_TOO_DEEP instead of taking every socket and all the memory from the others.
 * Entries exist only while an app has requests in flight, so the map stays small.
 */
export class Backlog {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts one more request of `app`; false (and nothing counted) when it is at the cap. */
  tryEnter(app: string): boolean {
    const n = this.counts.get(app) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(app, n + 1);
    return true;
  }

  leave(app: string): void {
    const n = this.counts.get(app);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(app);
    else this.counts.set(app, n - 1);
  }

  inflight(app: string): number {
    return this.counts.get(app) ?? 0;
  }
}

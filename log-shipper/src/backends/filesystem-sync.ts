/**
 * LOG_FSYNC=interval for many files at once: one syncfs(2) of LOG_DIR's filesystem (coreutils'
 * `sync --file-system`; Node has no binding for it) instead of one fdatasync per file.
 *
 * Why: with thousands of apps churning through LOG_MAX_OPEN_FILES handles, an fdatasync before
 * each eviction's close put a disk flush on the path of every write (10 000 apps in turn: one
 * per app section) and capped the shipper far below its CPU. Evicted files now close at once
 * and are only counted here; the next tick flushes them all, with every open file, in one
 * call. A tick with only a few open files dirty keeps the per-file fdatasync (a syncfs would
 * flush other writers' data on the same filesystem too — LOG_DIR on a volume of its own makes
 * it cheap). If `sync` cannot run, files go back to an fdatasync before their close.
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import type { ShipperMetrics } from '../metrics.js';

/** Above this many dirty open files a tick uses one syncfs rather than an fdatasync each. */
const PER_FILE_MAX = 16;
const SYNC_TIMEOUT_MS = 60_000;

export interface SyncableFile {
  /** Written since its last sync; cleared here when a syncfs is about to cover it. */
  dirty: boolean;
  /** fdatasync in the background if dirty. */
  syncIfDirty(): void;
  /** A syncfs is about to cover what the file holds now: returns what to run once it has. */
  willSync(): () => void;
}

export class FilesystemSync {
  /** Evicted files closed with writes not yet synced. */
  private closedDirty = 0;
  private running = false;
  private broken = false;
  /** syncfs calls started, and the latest of them known to have succeeded (its number). */
  private started = 0;
  private covered = 0;

  constructor(
    private readonly root: string,
    private readonly metrics: ShipperMetrics,
    private readonly log: Logger,
  ) {}

  /** False when closes must fdatasync themselves (`sync` failed). */
  get available(): boolean {
    return !this.broken;
  }

  /**
   * An evicted file closed with unsynced writes: the next tick syncs it. Returns a mark for
   * `synced`: its bytes are durable once a syncfs started after this call has succeeded.
   */
  noteClosedDirty(): number {
    this.closedDirty++;
    return this.started;
  }

  /** Whether a syncfs started after `mark` (from noteClosedDirty) has succeeded. */
  synced(mark: number): boolean {
    return this.covered > mark;
  }

  /** At shutdown: evicted files still waiting for their sync get it now. */
  async flush(): Promise<void> {
    if (this.closedDirty === 0 || this.broken) return;
    this.closedDirty = 0;
    await this.syncfs();
  }

  tick(files: readonly SyncableFile[]): void {
    if (this.running) return; // the next tick covers what this one would have
    const dirty = files.filter((f) => f.dirty);
    if (this.broken || (this.closedDirty === 0 && dirty.length <= PER_FILE_MAX)) {
      for (const f of dirty) f.syncIfDirty();
      return;
    }
    // Everything written before the call starts is covered: clear first, sync after.
    const synced = dirty.map((f) => {
      f.dirty = false;
      return f.willSync();
    });
    this.closedDirty = 0;
    this.running = true;
    void this.syncfs().then((ok) => {
      this.running = false;
      if (ok) {
        for (const done of synced) done();
        return;
      }
      // The open files get their own fdatasync from the next tick on; what evicted files
      // wrote has no fd left to sync — the kernel's writeback takes it.
      for (const f of dirty) f.dirty = true;
      this.log.error({ dir: this.root }, 'sync --file-system failed: log files fall back to an fdatasync each, before their close');
      this.broken = true;
    });
  }

  /** One syncfs of LOG_DIR's filesystem; never rejects: false (counted, logged) when it failed. */
  private syncfs(): Promise<boolean> {
    const number = ++this.started;
    return new Promise((resolve) => {
      execFile('sync', ['--file-system', this.root], { timeout: SYNC_TIMEOUT_MS }, (err) => {
        if (err === null) {
          this.metrics.filesystemSyncs.inc();
          if (number > this.covered) this.covered = number;
          return resolve(true);
        }
        this.metrics.fileErrors.inc({ operation: 'fsync' });
        this.log.warn({ err, dir: this.root }, 'sync --file-system failed');
        resolve(false);
      });
    });
  }
}

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
  readonly dirty: boolean;
  /** fdatasync in the background if dirty. */
  syncIfDirty(): void;
  /** The whole filesystem is about to be synced: forget the pending sync. */
  markSynced(): void;
}

export class FilesystemSync {
  /** Evicted files closed with writes not yet synced. */
  private closedDirty = 0;
  private running = false;
  private broken = false;

  constructor(
    private readonly root: string,
    private readonly metrics: ShipperMetrics,
    private readonly log: Logger,
  ) {}

  /** False when closes must fdatasync themselves (`sync` failed). */
  get available(): boolean {
    return !this.broken;
  }

  noteClosedDirty(): void {
    this.closedDirty++;
  }

  /** At shutdown: evicted files still waiting for their sync get it now. */
  async flush(): Promise<void> {
    if (this.closedDirty === 0 || this.broken) return;
    this.closedDirty = 0;
    await new Promise<void>((resolve) => {
      execFile('sync', ['--file-system', this.root], { timeout: SYNC_TIMEOUT_MS }, (err) => {
        if (err === null) this.metrics.filesystemSyncs.inc();
        else this.metrics.fileErrors.inc({ operation: 'fsync' });
        resolve();
      });
    });
  }

  tick(files: Iterable<SyncableFile>): void {
    if (this.running) return; // the next tick covers what this one would have
    let dirtyOpen = 0;
    for (const f of files) if (f.dirty) dirtyOpen++;
    if (this.closedDirty === 0 && dirtyOpen <= PER_FILE_MAX) {
      for (const f of files) f.syncIfDirty();
      return;
    }
    // Everything written before the call starts is covered: mark first, sync after.
    for (const f of files) f.markSynced();
    const closed = this.closedDirty;
    this.closedDirty = 0;
    this.running = true;
    execFile('sync', ['--file-system', this.root], { timeout: SYNC_TIMEOUT_MS }, (err) => {
      this.running = false;
      if (err === null) {
        this.metrics.filesystemSyncs.inc();
        return;
      }
      this.metrics.fileErrors.inc({ operation: 'fsync' });
      this.closedDirty += closed;
      if (!this.broken) this.log.error({ err, dir: this.root }, 'sync --file-system failed: log files fall back to an fdatasync each, before their close');
      this.broken = true;
    });
  }
}

/**
 * The open log files: one `AppFile` per app directory, each with its own write queue, kept
 * in an LRU (lru-cache) of at most LOG_MAX_OPEN_FILES entries.
 *
 * - Order: a write is queued synchronously when the batch is handed over, so the batches of
 *   one app reach its file in the order they were received, whichever connection they came
 *   from. A queue runs one append at a time (append-writer.ts: on a thread of its own);
 *   chunks that queued up behind a running append are written together by the next one, so
 *   a busy file costs fewer syscalls, never more than one per batch.
 * - Eviction and reopen (SIGHUP) retire an AppFile: it finishes what is queued on its old
 *   handle, then closes. The next write for that app makes a new AppFile that waits for the
 *   retired one to close before it opens the path afresh: after logrotate's rename, every
 *   line goes to either the renamed file or the new one, exactly once.
 * - The fd bound is hard (FileSlots): retired files still writing hold their slot, and a
 *   file that needs one while all are taken makes the least recently used idle file close.
 */
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import type { FsyncMode } from '../config.js';
import type { ShipperMetrics } from '../metrics.js';
import type { LogPaths } from './app-path.js';
import { AppFile, type KnownFile } from './app-file.js';
import { AppendWriter } from './append-writer.js';
import { FileSlots } from './file-slots.js';
import { FilesystemSync } from './filesystem-sync.js';
import type { PageCache } from './page-cache.js';

export interface OpenFilesOptions {
  maxOpen: number;
  /** 0: no size rotation. */
  rotateBytes: number;
  rotateKeep: number;
  fsync: FsyncMode;
  /** realpath of LOG_DIR: app directories must resolve right under it. */
  realRoot: string;
}

/**
 * The completion of one batch across its apps' files: one object and one promise per batch
 * rather than one per app. Resolves once every part is written; rejects on the first failure.
 */
export class BatchCompletion {
  private failed = false;

  constructor(
    private remaining: number,
    private readonly resolve: () => void,
    private readonly reject: (err: Error) => void,
  ) {}

  done(): void {
    if (--this.remaining === 0 && !this.failed) this.resolve();
  }

  fail(err: Error): void {
    this.remaining--;
    if (this.failed) return;
    this.failed = true;
    this.reject(err);
  }
}

export class OpenFiles {
  readonly slots: FileSlots;
  readonly writer = new AppendWriter();
  private readonly files: LRUCache<string, AppFile>;
  /** Closing promises of retired files, by app directory, for the next AppFile to wait on. */
  private readonly retiring = new Map<string, Promise<void>>();
  private syncTimer: NodeJS.Timeout | null = null;
  readonly fsSync: FilesystemSync;
  /** Set at shutdown: the last closes sync at once. */
  private shuttingDown = false;
  /**
   * App directories checked since start (where they lead, their file's torn tail), with what
   * this shipper last knew of their file; bounded: forgetting one only costs its checks again.
   */
  readonly known = new LRUCache<string, KnownFile>({ max: 100_000 });
  /** The most files ever open at once, for tests and the curious. */
  peakOpen = 0;

  constructor(
    readonly options: OpenFilesOptions,
    private readonly paths: LogPaths,
    readonly metrics: ShipperMetrics,
    readonly log: Logger,
    fsyncIntervalMs: number,
    readonly pageCache: PageCache,
  ) {
    this.fsSync = new FilesystemSync(options.realRoot, metrics, log);
    this.slots = new FileSlots(options.maxOpen, () => this.closeIdle());
    this.files = new LRUCache<string, AppFile>({ max: options.maxOpen, dispose: (file) => this.retire(file) });
    if (options.fsync === 'interval') {
      this.syncTimer = setInterval(() => this.fsSync.tick([...this.files.values()]), fsyncIntervalMs);
      this.syncTimer.unref();
    }
  }

  /**
   * Throws InvalidAppPath unless `write` can take this app. Only apps without an open entry
   * are checked (and their paths built): an entry exists only for an app that passed.
   */
  check(app: string): void {
    if (!this.files.has(app)) this.paths.of(app);
  }

  /** Queues `data` on the app's file now (so order is arrival order); `batch` hears when it is written. */
  write(app: string, data: Buffer, lines: number, batch: BatchCompletion): void {
    // Keyed by the app as received ('-' for unrouted), never by the directory name, so no
    // other name can reach an entry that was checked for another.
    let file = this.files.get(app);
    if (file === undefined) {
      file = new AppFile(app, this.paths.of(app), this.retiring.get(app) ?? null, this);
      this.files.set(app, file);
    }
    file.enqueue(data, lines, batch);
  }

  /** Every file finishes its queued writes on its current handle, then closes; the next write of each app opens its path afresh. */
  async reopenAll(): Promise<void> {
    const current = [...this.files.values()];
    // Closes without their own fdatasync, like evictions: the new files wait for the old ones
    // to close (order across logrotate's rename), and 100 fdatasyncs first stalled every
    // app's writes at each SIGHUP. The next interval tick syncs what they wrote.
    this.files.clear();
    await Promise.all(current.map((f) => f.closed));
  }

  async close(): Promise<void> {
    if (this.syncTimer !== null) clearInterval(this.syncTimer);
    this.shuttingDown = true;
    this.files.clear();
    await Promise.all([...this.retiring.values()]);
    await this.fsSync.flush();
    await this.writer.close();
  }

  opened(): void {
    const open = this.slots.inUse;
    if (open > this.peakOpen) this.peakOpen = open;
    this.metrics.openFiles.set(open);
  }

  closedOne(): void {
    this.slots.release();
    this.metrics.openFiles.set(this.slots.inUse);
  }

  becameIdle(): void {
    if (this.slots.hasWaiters) this.closeIdle();
  }

  private retire(file: AppFile): void {
    file.retired = true;
    file.evicted = !this.shuttingDown;
    const key = file.app;
    const closed = file.closed;
    this.retiring.set(key, closed);
    void closed.then(() => {
      if (this.retiring.get(key) === closed) this.retiring.delete(key);
    });
    if (!file.running) void file.close();
  }

  /** A file waits for a slot: close the least recently used file that is open and idle, if any (else the next one to go idle will be). */
  private closeIdle(): void {
    for (const file of this.files.rvalues()) {
      if (file?.idleOpen === true) {
        this.files.delete(file.app);
        return;
      }
    }
  }
}

/**
 * One app's log file, as OpenFiles (open-files.ts) holds it: its write queue (one append at a
 * time, what queued up behind it written together), its open (checked directory and torn tail
 * at the first open of this process, a plain reopen after), size rotation, its close, and the
 * syncs of LOG_FSYNC=interval|always with the page-cache drops that follow them.
 */
import { mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { AppPath } from './app-path.js';
import { AppendError } from './append-writer.js';
import { LogFd } from './log-fd.js';
import type { BatchCompletion, OpenFiles } from './open-files.js';
import { rotateFile } from './rotation.js';
import { cutTornTail } from './torn-tail.js';

interface PendingWrite {
  data: Buffer;
  lines: number;
  batch: BatchCompletion;
}

export interface KnownFile {
  /** Its size when this shipper closed it (or checked it, at the first open). */
  size: number;
  /** From FilesystemSync.noteClosedDirty when it closed with writes not synced yet: once synced, its pages can go. */
  syncMark: number;
}
export const NOTHING_TO_DROP = -1;

export class AppFile {
  handle: LogFd | null = null;
  /** Bytes in the file as far as this shipper knows (fstat at open, plus what it wrote). */
  size = 0;
  /** Written since the last fdatasync (LOG_FSYNC=interval). */
  dirty = false;
  retired = false;
  /** Retired by the LRU or a reopen (SIGHUP), not by shutdown: its close leaves the sync to the interval tick. */
  evicted = false;
  running = false;
  private queue: PendingWrite[] = [];
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private closing = false;

  constructor(
    readonly app: string,
    readonly where: AppPath,
    /** The previous AppFile of the same app, still closing: this one opens only after it. */
    private predecessor: Promise<void> | null,
    private readonly owner: OpenFiles,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  get idleOpen(): boolean {
    return this.handle !== null && !this.running && !this.retired;
  }

  enqueue(data: Buffer, lines: number, batch: BatchCompletion): void {
    this.queue.push({ data, lines, batch });
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  /** Never rejects: every failure is delivered to the writes it concerns. */
  private async run(): Promise<void> {
    if (this.predecessor !== null) {
      await this.predecessor;
      this.predecessor = null;
    }
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      try {
        await this.writeGroup(group);
        for (const w of group) w.batch.done();
      } catch (err) {
        for (const w of group) w.batch.fail(err as Error);
      }
    }
    this.running = false;
    if (this.retired) await this.close();
    else this.owner.becameIdle();
  }

  private async writeGroup(group: PendingWrite[]): Promise<void> {
    const { options, metrics } = this.owner;
    let total = 0;
    let lines = 0;
    for (const w of group) {
      total += w.data.length;
      lines += w.lines;
    }
    if (this.handle === null) await this.open();
    if (options.rotateBytes > 0 && this.size + total > options.rotateBytes) await this.maybeRotate(total);
    const handle = this.handle!;
    const started = performance.now();
    let appended = false;
    try {
      await this.owner.writer.append(handle.fd, group.map((w) => w.data));
      appended = true;
      if (options.fsync === 'always') {
        await handle.datasync();
        metrics.fsyncs.inc();
      } else {
        this.dirty = true;
      }
    } catch (err) {
      metrics.fileErrors.inc({ operation: 'write' });
      // A partial write would leave half a line that the resent batch then follows: cut off
      // exactly what landed (appends go to the end, whatever size we believed the file had).
      // (All of it when only the fdatasync of LOG_FSYNC=always failed: the batch is refused and comes again.)
      const landed = appended ? total : err instanceof AppendError ? err.written : 0;
      if (landed > 0) {
        await handle
          .stat()
          .then((st) => (st.size >= landed ? handle.truncate(st.size - landed) : undefined))
          .catch(() => undefined);
      }
      // Reopen for the next write: the file or its directory may have been replaced.
      await this.release();
      throw err;
    }
    this.size += total;
    if (options.fsync === 'always') this.dropSynced(handle, this.size);
    metrics.fileWriteSeconds.observe((performance.now() - started) / 1000);
    metrics.fileWrites.inc();
    metrics.fileBatches.inc(group.length);
    metrics.fileLines.inc(lines);
    metrics.fileBytes.inc(total);
  }

  private async open(): Promise<void> {
    const { metrics } = this.owner;
    const wait = this.owner.slots.acquire();
    if (wait !== null) await wait;
    try {
      const { file, key } = this.where;
      // First open of this app's file in this process: check its directory and cut a torn
      // tail. Afterwards (the app evicted and back, a reopen, a rotation) only the file is
      // opened: two threadpool calls instead of four or more, which is what 10 000 apps
      // churning through LOG_MAX_OPEN_FILES handles pay on every write.
      const known = this.owner.known.get(key);
      const first = known === undefined;
      let handle: LogFd;
      if (first) handle = await this.openChecked();
      else {
        try {
          handle = await LogFd.open(this.owner.writer, file);
        } catch (err) {
          // The directory went away (an operator's cleanup): make it again, checked.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          handle = await this.openChecked();
        }
      }
      try {
        if (first) {
          const before = (await handle.stat()).size;
          this.size = await cutTornTail(file, handle, before);
          if (this.size < before) this.owner.log.warn({ file, bytes: before - this.size }, 'log file ended in a torn line (a write cut short by a crash): cut off; its batch is resent whole');
          this.owner.known.set(key, { size: this.size, syncMark: NOTHING_TO_DROP });
        } else {
          // The size this shipper left it at: no fstat per reopen (a third of what a file
          // churning through the handle LRU cost). It may be stale (logrotate renamed the file,
          // copytruncate emptied it); it only decides when to rotate, and maybeRotate asks the
          // file before rotating.
          this.size = known.size;
          // Closed before its sync (evicted), synced since: its pages can go now (page-cache.ts).
          if (known.syncMark !== NOTHING_TO_DROP && this.owner.fsSync.synced(known.syncMark)) this.dropPages(handle, known.size);
        }
      } catch (err) {
        await handle.close().catch(() => undefined);
        throw err;
      }
      this.handle = handle;
      this.owner.opened();
    } catch (err) {
      this.owner.slots.release();
      metrics.fileErrors.inc({ operation: 'open' });
      throw err;
    }
  }

  /** Creates the app's directory if needed, checks it is really LOG_DIR/<key>, opens the file. */
  private async openChecked(): Promise<LogFd> {
    const { dir, file, key } = this.where;
    await mkdir(dir, { recursive: true, mode: 0o750 });
    // The directory must really be LOG_DIR/<key>, not a symlink planted to lead elsewhere.
    // Checked at the first open only: replacing it later takes write access to LOG_DIR, the
    // shipper's own directory; the file itself is always opened with O_NOFOLLOW.
    const real = await realpath(dir);
    if (real !== path.join(this.owner.options.realRoot, key)) throw new Error(`${dir} resolves to ${real}, outside LOG_DIR: refusing to write there`);
    return LogFd.open(this.owner.writer, file);
  }

  private async maybeRotate(incoming: number): Promise<void> {
    const { options, metrics, log } = this.owner;
    // The known size may be stale (the file truncated or replaced): ask before rotating.
    this.size = (await this.handle!.stat()).size;
    if (this.size === 0 || this.size + incoming <= options.rotateBytes) return;
    await this.release();
    try {
      await rotateFile(this.where.file, options.rotateKeep);
      this.owner.known.set(this.where.key, { size: 0, syncMark: NOTHING_TO_DROP });
    } catch (err) {
      metrics.fileErrors.inc({ operation: 'rotate' });
      log.error({ err, file: this.where.file }, 'size rotation failed; writing on to the same file');
    }
    metrics.fileRotations.inc();
    await this.open();
  }

  /** Closes the handle, if any, and gives its slot back (after an fdatasync when writes are pending one). */
  private async release(): Promise<void> {
    const handle = this.handle;
    if (handle === null) return;
    this.handle = null;
    const { metrics, options, known } = this.owner;
    let syncMark = NOTHING_TO_DROP;
    if (this.dirty && options.fsync === 'interval') {
      this.dirty = false;
      // An evicted file leaves its sync to the next interval tick (filesystem-sync.ts).
      if (this.evicted && this.owner.fsSync.available) syncMark = this.owner.fsSync.noteClosedDirty();
      else await handle.datasync().then(
        () => {
          metrics.fsyncs.inc();
          this.dropPages(handle, this.size);
        },
        () => metrics.fileErrors.inc({ operation: 'fsync' }),
      );
    }
    if (known.has(this.where.key)) known.set(this.where.key, { size: this.size, syncMark });
    await handle.close().catch(() => metrics.fileErrors.inc({ operation: 'close' }));
    this.owner.closedOne();
  }

  /** Retired and idle: close for good (after the predecessor, so closes chain in order). */
  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    if (this.predecessor !== null) await this.predecessor;
    await this.release();
    this.resolveClosed();
    return this.closed;
  }

  /** For LOG_FSYNC=interval: one fdatasync if anything was written since the last. */
  syncIfDirty(): void {
    const handle = this.handle;
    if (!this.dirty || handle === null) return;
    this.dirty = false;
    const { metrics } = this.owner;
    const synced = this.size;
    // Concurrent with writes on the same fd is fine; close() waits for it to finish.
    handle.datasync().then(
      () => {
        metrics.fsyncs.inc();
        this.dropSynced(handle, synced);
      },
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'EBADF') return; // closed meanwhile; close() synced it
        this.dirty = true;
        metrics.fileErrors.inc({ operation: 'fsync' });
      },
    );
  }

  /** A syncfs covers the `size` bytes written so far: their pages can go once it has. */
  willSync(): () => void {
    const handle = this.handle;
    const synced = this.size;
    return () => this.dropSynced(handle, synced);
  }

  /** page-cache.ts: only while that same handle is open — a closed fd's number may be another file's by now. */
  private dropSynced(handle: LogFd | null, bytes: number): void {
    if (handle !== null && this.handle === handle) this.dropPages(handle, bytes);
  }

  /** `handle` is open (being opened or closed by this AppFile) and its first `bytes` are durable. */
  private dropPages(handle: LogFd, bytes: number): void {
    if (this.owner.pageCache.dropSynced(handle.fd, bytes)) this.owner.metrics.pageCacheDrops.inc();
  }
}

/**
 * The file backend: each app's lines appended to `<LOG_DIR>/<app>/router.log` (see
 * app-path.ts), one write call per app per batch (open-files.ts), with logrotate-style
 * reopen on SIGHUP and size rotation.
 *
 * Contract ("durable"): a write resolves once the bytes were handed to the OS (write(2)
 * returned) — they survive a crash of the shipper, not of the machine. LOG_FSYNC=interval
 * bounds what a machine crash loses to LOG_FSYNC_INTERVAL; LOG_FSYNC=always resolves only
 * after fdatasync(2).
 */
import { mkdir, realpath } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { FsyncMode } from '../config.js';
import type { ShipperMetrics } from '../metrics.js';
import { MAX_HISTORY_BYTES, lastLinesOf } from '../tail/read-last-lines.js';
import { LogPaths } from './app-path.js';
import type { AppLines, LogBackend } from './backend.js';
import { BatchCompletion, OpenFiles } from './open-files.js';
import { PageCache } from './page-cache.js';

export interface FileBackendOptions {
  logDir: string;
  maxOpenFiles: number;
  rotateBytes: number;
  rotateKeep: number;
  fsync: FsyncMode;
  fsyncIntervalMs: number;
}

export class FileBackend implements LogBackend {
  readonly name = 'file';
  private closed = false;

  private constructor(
    private readonly paths: LogPaths,
    private readonly files: OpenFiles,
    private readonly log: Logger,
  ) {}

  /** Creates LOG_DIR if needed; fails (at start) when it cannot. */
  static async create(options: FileBackendOptions, metrics: ShipperMetrics, log: Logger): Promise<FileBackend> {
    const paths = new LogPaths(options.logDir);
    await mkdir(paths.root, { recursive: true, mode: 0o750 });
    const realRoot = await realpath(paths.root);
    const files = new OpenFiles(
      { maxOpen: options.maxOpenFiles, rotateBytes: options.rotateBytes, rotateKeep: options.rotateKeep, fsync: options.fsync, realRoot },
      paths,
      metrics,
      log,
      options.fsyncIntervalMs,
      await PageCache.create(log),
    );
    log.info({ dir: paths.root, fsync: options.fsync, max_open_files: options.maxOpenFiles }, 'file backend ready');
    return new FileBackend(paths, files, log);
  }

  get root(): string {
    return this.paths.root;
  }

  /** The most log files that were ever open at once. */
  get peakOpenFiles(): number {
    return this.files.peakOpen;
  }

  write(batch: readonly AppLines[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the file backend is closed'));
    // Every app is checked before anything is queued: a batch is written whole or not at all.
    try {
      for (const a of batch) this.files.check(a.app);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (batch.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const completion = new BatchCompletion(batch.length, resolve, reject);
      for (const a of batch) this.files.write(a.app, a.data, a.lines, completion);
    });
  }

  async reopen(): Promise<void> {
    await this.files.reopenAll();
    this.files.metrics.fileReopens.inc();
    this.log.info('log files reopened');
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.files.close();
  }

  /**
   * The last `n` complete lines of the app's log; empty when it has none. Right after a
   * rotation (size rotation, or logrotate without compressing its `.1`) the current file holds
   * fewer: the rest comes from `router.log.1`. A rotation between the two reads can skip or
   * repeat a few lines of history, never of a follow (tail-hub.ts).
   */
  async lastLines(app: string, n: number): Promise<Buffer> {
    const file = this.paths.of(app).file;
    const current = await lastLinesOf(file, n, MAX_HISTORY_BYTES);
    // Only a file read to its start continues in the older one: a gap would be silent.
    if (!current.whole) return current.data;
    let got = 0;
    for (let i = current.data.indexOf(10); i >= 0; i = current.data.indexOf(10, i + 1)) got++;
    if (got >= n) return current.data;
    const older = await lastLinesOf(`${file}.1`, n - got, MAX_HISTORY_BYTES - current.bytesRead);
    return older.data.length === 0 ? current.data : Buffer.concat([older.data, current.data]);
  }
}

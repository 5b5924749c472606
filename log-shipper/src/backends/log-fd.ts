/**
 * One open of a log file: a raw fd opened and closed on the append writer's thread (no
 * threadpool round trip — append-writer.ts), with fstat, ftruncate and fdatasync on libuv's
 * threadpool (rare, and an fdatasync must not hold up other files' appends).
 *
 * The object stands for this one open: a closed fd's number may belong to another file a
 * moment later, so callers compare LogFd objects, never numbers. Like a FileHandle, close()
 * waits for the fdatasyncs in flight, so none of them can reach another file's fd.
 */
import { fdatasync, fstat, ftruncate, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import type { AppendWriter } from './append-writer.js';

const fstatAsync = promisify(fstat);
const ftruncateAsync = promisify(ftruncate);
const fdatasyncAsync = promisify(fdatasync);

export class LogFd {
  private syncs = 0;
  private synced: (() => void) | null = null;

  private constructor(
    readonly fd: number,
    private readonly writer: AppendWriter,
  ) {}

  static async open(writer: AppendWriter, file: string): Promise<LogFd> {
    return new LogFd(await writer.openFile(file), writer);
  }

  stat(): Promise<Stats> {
    return fstatAsync(this.fd);
  }

  truncate(bytes: number): Promise<void> {
    return ftruncateAsync(this.fd, bytes);
  }

  async datasync(): Promise<void> {
    this.syncs++;
    try {
      await fdatasyncAsync(this.fd);
    } finally {
      if (--this.syncs === 0) this.synced?.();
    }
  }

  /** After the fdatasyncs in flight; the caller has no append pending on it. */
  async close(): Promise<void> {
    if (this.syncs > 0) await new Promise<void>((resolve) => (this.synced = resolve));
    await this.writer.closeFile(this.fd);
  }
}

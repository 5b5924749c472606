/**
 * Batches as NDJSON on a file descriptor (stdout when LOG_SHIPPER_URL is unset): written
 * asynchronously through the thread pool, so a slow reader of the pipe never stalls the event
 * loop (process.stdout writes a pipe synchronously on Linux). What waits to be written is
 * bounded by the spool; one batch is written at a time, so lines never interleave.
 *
 * A file gets one write per batch. A pipe or socket (a container's stdout) gets writes of at
 * most PIPE_BUF bytes cut at line ends: the kernel writes those atomically, so the router's own
 * pino lines, written to the same pipe, can never land in the middle of an access line.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { CutBatch } from './batcher.js';
import type { DropReport } from './drop-report.js';
import type { AccessLogMetrics } from './metrics.js';
import { Spool, type SpoolEntry } from './spool.js';
import { ThrottledLog } from './throttled-log.js';

interface Pending extends SpoolEntry {
  readonly data: Buffer;
  readonly lineCount: number;
}

/** The descriptor is non-blocking (someone set O_NONBLOCK on a shared pipe): try again shortly. */
const EAGAIN_RETRY_MS = 10;
/** Linux's PIPE_BUF: writes up to this size to a pipe are never interleaved with other writers'. */
const PIPE_BUF = 4096;
const NEWLINE = 0x0a;

export class StdoutWriter {
  private readonly spool: Spool<Pending>;
  private readonly throttled: ThrottledLog;
  /** The batch being written, out of the spool: it is never dropped half-written. */
  private writing: Pending | null = null;
  private idleWaiters: Array<() => void> = [];
  /** Largest write: PIPE_BUF on a pipe or socket, unbounded on a file. */
  private readonly maxWrite: number;

  constructor(
    private readonly fd: number,
    spoolBytes: number,
    private readonly metrics: AccessLogMetrics,
    private readonly drops: DropReport,
    log: Logger,
  ) {
    this.throttled = new ThrottledLog(log);
    this.maxWrite = isPipe(fd) ? PIPE_BUF : Infinity;
    this.spool = new Spool<Pending>(spoolBytes, (entry) => drops.drop(entry, 'spool_full'));
  }

  enqueue(batch: CutBatch): void {
    const data = batch.sections.length === 1 ? batch.sections[0]!.data : Buffer.concat(batch.sections.map((s) => s.data));
    this.spool.add({ data, bytes: data.length, apps: batch.sections.map((s) => s.app), lines: batch.lines, lineCount: batch.lineCount });
    this.updateGauge();
    if (this.writing === null) this.next();
  }

  /** Resolves when everything is written, or after `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    if (this.writing === null && this.spool.length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private next(): void {
    const entry = this.spool.shift();
    this.writing = entry ?? null;
    this.updateGauge();
    if (entry === undefined) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    this.write(entry, 0);
  }

  private write(entry: Pending, offset: number): void {
    fs.write(this.fd, entry.data, offset, this.chunkLength(entry.data, offset), null, (err, written) => {
      if (err !== null) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.write(entry, offset), EAGAIN_RETRY_MS);
          return;
        }
        this.throttled.write('error', `write:${err.code ?? err.message}`, { fd: this.fd, err: err.message }, 'cannot write access-log lines; batch dropped');
        this.drops.drop(entry, 'write_failed');
        this.next();
        return;
      }
      if (offset + written < entry.data.length) {
        this.write(entry, offset + written);
        return;
      }
      this.metrics.shippedLines.inc(entry.lineCount);
      this.metrics.shippedBatches.inc();
      this.metrics.shippedBytes.inc(entry.bytes);
      this.next();
    });
  }

  /** Bytes to write from `offset`: up to maxWrite, ending after a '\n' (a line longer than that goes alone, whole). */
  private chunkLength(data: Buffer, offset: number): number {
    const left = data.length - offset;
    if (left <= this.maxWrite) return left;
    const lastNewline = data.lastIndexOf(NEWLINE, offset + this.maxWrite - 1);
    if (lastNewline >= offset) return lastNewline + 1 - offset;
    const nextNewline = data.indexOf(NEWLINE, offset + this.maxWrite);
    return nextNewline === -1 ? left : nextNewline + 1 - offset;
  }

  private updateGauge(): void {
    this.metrics.spoolBytes.set(this.spool.bytes + (this.writing?.bytes ?? 0));
  }
}

function isPipe(fd: number): boolean {
  try {
    const stat = fs.fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return true;
  }
}

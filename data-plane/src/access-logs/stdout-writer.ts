/**
 * Batches as NDJSON on a file descriptor (stdout when LOG_SHIPPER_URL is unset): one write
 * per batch, asynchronous through the thread pool, so a slow reader of the pipe never stalls
 * the event loop (a pipe on stdout is written synchronously by process.stdout on Linux).
 * What waits to be written is bounded by the spool; one batch is written at a time, whole,
 * so lines never interleave with each other.
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

export class StdoutWriter {
  private readonly spool: Spool<Pending>;
  private readonly throttled: ThrottledLog;
  /** The batch being written, out of the spool: it is never dropped half-written. */
  private writing: Pending | null = null;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly fd: number,
    spoolBytes: number,
    private readonly metrics: AccessLogMetrics,
    private readonly drops: DropReport,
    log: Logger,
  ) {
    this.throttled = new ThrottledLog(log);
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
    fs.write(this.fd, entry.data, offset, entry.data.length - offset, null, (err, written) => {
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

  private updateGauge(): void {
    this.metrics.spoolBytes.set(this.spool.bytes + (this.writing?.bytes ?? 0));
  }
}

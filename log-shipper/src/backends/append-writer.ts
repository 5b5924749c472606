/**
 * Appends to log files from one thread of its own, with plain blocking write(2) calls.
 *
 * Why not fs.write on libuv's threadpool: the shipper makes one write per app per batch
 * (8 and more per 64 KB batch), and each threadpool write pays a wake-up of a pool thread and
 * one of the event loop on top of the syscall — on this VM 250 µs of CPU per 8-write batch
 * against 150 for the same writes made in a row by one thread (loadtest/, BENCHMARKS.md).
 * Writing inline on the event loop would be cheapest but would stall every connection and the
 * tail API behind a slow disk. So: appends queue here; one message at a time goes to the
 * writer thread carrying everything queued (one transferred buffer), and its answer carries
 * every result. While the thread writes, the next appends gather — the busier, the fewer
 * hand-offs per write. fsync, open, close and rename stay on the threadpool: they are rare,
 * and an fsync must not hold up appends to other files.
 *
 * Callers must not close an fd with an append pending on it (open-files.ts closes a file only
 * once its queue is idle).
 */
import { Worker } from 'node:worker_threads';
import type { AppendDone, AppendJob } from './append-writer-thread.js';

/** A few batches' worth: most messages fit, so the buffer is rarely replaced. */
const MIN_BUFFER_BYTES = 1 << 20;

interface Pending {
  fd: number;
  buffers: Buffer[];
  bytes: number;
  resolve: (written: number) => void;
  reject: (err: Error) => void;
}

export class AppendError extends Error {
  constructor(
    readonly code: string,
    /** Bytes of this append that did reach the file before the failure. */
    readonly written: number,
  ) {
    super(`append failed after ${written} bytes: ${code}`);
    this.name = 'AppendError';
  }
}

export class AppendWriter {
  private worker: Worker | null = null;
  private queued: Pending[] = [];
  private sent: Pending[] | null = null;
  private postScheduled = false;
  private nextId = 1;
  private closed = false;
  private spare: ArrayBuffer | null = null;

  /** Resolves with the bytes written (all of them) once write(2) returned; rejects with an AppendError. */
  append(fd: number, buffers: Buffer[]): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the append writer is closed'));
    let bytes = 0;
    for (const b of buffers) bytes += b.length;
    return new Promise((resolve, reject) => {
      this.queued.push({ fd, buffers, bytes, resolve, reject });
      // Appends of the whole loop turn travel together: every batch read in this poll phase,
      // from every connection (a microtask went out after the first: 2 runs of 2 of 2000
      // batches/s for 30 s fell behind with it, none with this).
      if (this.sent === null && !this.postScheduled) {
        this.postScheduled = true;
        setImmediate(() => this.post());
      }
    });
  }

  private post(): void {
    this.postScheduled = false;
    if (this.sent !== null || this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    let total = 0;
    for (const p of batch) total += p.bytes;
    const data = this.buffer(total);
    const view = new Uint8Array(data, 0, total);
    const fds: number[] = new Array<number>(batch.length);
    const lengths: number[] = new Array<number>(batch.length);
    let at = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      fds[i] = p.fd;
      lengths[i] = p.bytes;
      for (const b of p.buffers) {
        view.set(b, at);
        at += b.length;
      }
    }
    const job: AppendJob = { id: this.nextId++, fds, lengths, data };
    this.sent = batch;
    this.thread().postMessage(job, [data]);
  }

  /**
   * The buffer that travels to the thread and back (transferred both ways, never copied),
   * reused while big enough: a fresh one per message made external memory churn (+70 MiB RSS).
   */
  private buffer(bytes: number): ArrayBuffer {
    const spare = this.spare;
    this.spare = null;
    if (spare !== null && spare.byteLength >= bytes) return spare;
    // Its own ArrayBuffer (never Buffer's shared pool), not zero-filled: every byte used is copied over.
    return Buffer.allocUnsafeSlow(Math.max(bytes, MIN_BUFFER_BYTES)).buffer as ArrayBuffer;
  }

  private thread(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(new URL('./append-writer-thread.js', import.meta.url));
    worker.unref();
    worker.on('message', (done: AppendDone) => this.settle(done));
    // The thread only dies of a bug or of memory exhaustion: fail what it held, start afresh on the next append.
    const lost = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = null;
      const batch = this.sent ?? [];
      this.sent = null;
      for (const p of batch) p.reject(new AppendError(`writer thread died: ${err.message}`, 0));
      this.post();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private settle(done: AppendDone): void {
    this.spare = done.data;
    const batch = this.sent ?? [];
    this.sent = null;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const error = done.errors[i] ?? 'EIO';
      if (error === '') p.resolve(done.written[i]!);
      else p.reject(new AppendError(error, done.written[i] ?? 0));
    }
    this.post();
  }

  /** After the last append settled. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    if (worker !== null) await worker.terminate();
  }
}

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
 * hand-offs per write. Opens and closes of log files run here too, in line: with 10 000 apps
 * churning through LOG_MAX_OPEN_FILES handles, every app section paid an open and a close,
 * each two threadpool wake-ups. fsync, stat, truncate and rename stay on the threadpool: they
 * are rare, and an fsync must not hold up appends to other files.
 *
 * An append queued after a close of its fd fails (EBADF) or, worse, lands in whatever file
 * took the number: callers close a file only once its queue is idle (app-file.ts).
 */
import { Worker } from 'node:worker_threads';
import { OP_CLOSE, OP_OPEN, type AppendDone, type AppendJob } from './append-protocol.js';

/** A few batches' worth: most messages fit, so the buffer is rarely replaced. */
const MIN_BUFFER_BYTES = 1 << 20;

interface Pending {
  fd: number;
  /** Bytes of an append, or OP_OPEN, OP_CLOSE. */
  op: number;
  buffers: Buffer[];
  path: string;
  resolve: (result: number) => void;
  reject: (err: Error) => void;
}

const NO_BUFFERS: Buffer[] = [];

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

/** An open or close on the writer's thread failed; `code` is the errno code (ENOENT…). */
export class FileOpError extends Error {
  constructor(
    readonly code: string,
    operation: 'open' | 'close',
  ) {
    super(`${operation} failed: ${code}`);
    this.name = 'FileOpError';
  }
}

function failure(p: Pending, code: string, written = 0): Error {
  return p.op >= 0 ? new AppendError(code, written) : new FileOpError(code, p.op === OP_OPEN ? 'open' : 'close');
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
    let bytes = 0;
    for (const b of buffers) bytes += b.length;
    return this.queue(fd, bytes, buffers, '');
  }

  /**
   * open(2) of a log file (append-protocol.ts: LOG_FILE_FLAGS) on the writer's thread, in line
   * with the appends: no threadpool round trip, which is what a file churning through the
   * handle LRU pays most. Resolves with the fd; rejects with a FileOpError.
   */
  openFile(path: string): Promise<number> {
    return this.queue(-1, OP_OPEN, NO_BUFFERS, path);
  }

  /** close(2) on the writer's thread, after every append queued before it. */
  closeFile(fd: number): Promise<void> {
    return this.queue(fd, OP_CLOSE, NO_BUFFERS, '').then(() => undefined);
  }

  private queue(fd: number, op: number, buffers: Buffer[], path: string): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the append writer is closed'));
    return new Promise((resolve, reject) => {
      this.queued.push({ fd, op, buffers, path, resolve, reject });
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
    if (this.closed || this.sent !== null || this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    let total = 0;
    for (const p of batch) if (p.op > 0) total += p.op;
    const data = this.buffer(total);
    const view = new Uint8Array(data, 0, total);
    const fds: number[] = new Array<number>(batch.length);
    const lengths: number[] = new Array<number>(batch.length);
    const paths: string[] = [];
    let at = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      fds[i] = p.fd;
      lengths[i] = p.op;
      if (p.op === OP_OPEN) paths.push(p.path);
      for (const b of p.buffers) {
        view.set(b, at);
        at += b.length;
      }
    }
    const job: AppendJob = { id: this.nextId++, fds, lengths, paths, data };
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
      for (const p of batch) p.reject(failure(p, `writer thread died: ${err.message}`));
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
      else p.reject(failure(p, error, done.written[i] ?? 0));
    }
    this.post();
  }

  /** After the last append settled. */
  /** Meant for after the last operation settled; whatever is still queued or in flight fails. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    const unsettled = [...(this.sent ?? []), ...this.queued];
    this.sent = null;
    this.queued = [];
    for (const p of unsettled) p.reject(failure(p, 'the append writer is closed'));
    if (worker !== null) await worker.terminate();
  }
}

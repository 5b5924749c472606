/**
 * The append writer's thread (append-writer.ts): takes a list of appends — an fd and a byte
 * range of one transferred buffer each — and writes them in order with write(2), blocking
 * this thread only. Each append is written whole or reports how far it got and why.
 */
import { writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

export interface AppendJob {
  id: number;
  fds: number[];
  /** Byte length of each append, in `data`, one after the other. */
  lengths: number[];
  data: ArrayBuffer;
}

export interface AppendDone {
  id: number;
  /** Bytes written per append. */
  written: number[];
  /** Per append: '' when written whole, else the errno code (or message) of the failure. */
  errors: string[];
  /** The job's buffer, given back for reuse. */
  data: ArrayBuffer;
}

function run(job: AppendJob): AppendDone {
  const bytes = new Uint8Array(job.data);
  // job.data may be longer than the appends: it is a reused buffer (append-writer.ts).
  const written: number[] = [];
  const errors: string[] = [];
  let at = 0;
  for (let i = 0; i < job.fds.length; i++) {
    const fd = job.fds[i]!;
    const end = at + job.lengths[i]!;
    let pos = at;
    let error = '';
    try {
      // Regular files rarely take less than asked (a full disk, a signal): write the rest.
      while (pos < end) {
        const n = writeSync(fd, bytes, pos, end - pos);
        if (n === 0) throw new Error('write made no progress');
        pos += n;
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      error = e.code ?? e.message;
      if (error === '') error = 'EIO';
    }
    written[i] = pos - at;
    errors.push(error);
    at = end;
  }
  return { id: job.id, written, errors, data: job.data };
}

parentPort?.on('message', (job: AppendJob) => {
  const done = run(job);
  parentPort!.postMessage(done, [done.data]);
});

/**
 * The append writer's thread (append-writer.ts): takes a list of file operations — mostly
 * appends, an fd and a byte range of one transferred buffer each; also opens and closes —
 * and runs them in order with blocking syscalls, blocking this thread only. Each append is
 * written whole or reports how far it got and why.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { LOG_FILE_FLAGS, LOG_FILE_MODE, OP_OPEN, type AppendDone, type AppendJob } from './append-protocol.js';

function codeOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? (e.message || 'EIO');
}

function run(job: AppendJob): AppendDone {
  const bytes = new Uint8Array(job.data);
  // job.data may be longer than the appends: it is a reused buffer (append-writer.ts).
  const written: number[] = [];
  const errors: string[] = [];
  let at = 0;
  let opened = 0;
  for (let i = 0; i < job.fds.length; i++) {
    const fd = job.fds[i]!;
    const length = job.lengths[i]!;
    if (length < 0) {
      try {
        written[i] = length === OP_OPEN ? openSync(job.paths[opened++]!, LOG_FILE_FLAGS, LOG_FILE_MODE) : (closeSync(fd), 0);
        errors.push('');
      } catch (err) {
        written[i] = -1;
        errors.push(codeOf(err));
      }
      continue;
    }
    const end = at + length;
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
      error = codeOf(err);
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

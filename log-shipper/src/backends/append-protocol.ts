/** The messages between the append writer (append-writer.ts) and its thread (append-writer-thread.ts). */
import { constants } from 'node:fs';

/**
 * How the thread opens every log file: appending, created 0640, never through a symlink.
 * O_NONBLOCK does nothing to a regular file; a FIFO planted as router.log fails at once
 * (ENXIO) instead of blocking the thread, which every app's appends wait on.
 */
export const LOG_FILE_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
export const LOG_FILE_MODE = 0o640;

/** In AppendJob.lengths: not an append but an open of the next of `paths` (its fd comes back in `written`). */
export const OP_OPEN = -1;
/** In AppendJob.lengths: not an append but a close of the fd. */
export const OP_CLOSE = -2;

export interface AppendJob {
  id: number;
  fds: number[];
  /** Byte length of each append, in `data`, one after the other; or OP_OPEN, OP_CLOSE. */
  lengths: number[];
  /** The files the OP_OPENs open (LOG_FILE_FLAGS, LOG_FILE_MODE), in order. */
  paths: string[];
  data: ArrayBuffer;
}

export interface AppendDone {
  id: number;
  /** Bytes written per append; the fd of an open. */
  written: number[];
  /** Per append: '' when written whole, else the errno code (or message) of the failure. */
  errors: string[];
  /** The job's buffer, given back for reuse. */
  data: ArrayBuffer;
}

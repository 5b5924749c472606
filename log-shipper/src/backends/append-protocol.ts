/** The messages between the append writer (append-writer.ts) and its thread (append-writer-thread.ts). */

/** In AppendJob.lengths: not an append but an open of the next of `paths` (its fd comes back in `written`). */
export const OP_OPEN = -1;
/** In AppendJob.lengths: not an append but a close of the fd. */
export const OP_CLOSE = -2;

export interface AppendJob {
  id: number;
  fds: number[];
  /** Byte length of each append, in `data`, one after the other; or OP_OPEN, OP_CLOSE. */
  lengths: number[];
  /** The files the OP_OPENs open, in order, with `flags` and `mode`. */
  paths: string[];
  flags: number;
  mode: number;
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

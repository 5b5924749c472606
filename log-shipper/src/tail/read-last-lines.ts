/**
 * The last lines of a log file, read backwards from its end in bounded chunks: the history
 * a tail starts with costs a few reads, never the whole file. A line still being written
 * (no '\n' yet) is left out.
 */
import { open } from 'node:fs/promises';

const CHUNK = 64 * 1024;
/** Never read more than this for one request, whatever `n` (lines are at most 64 KB). */
export const MAX_HISTORY_BYTES = 16 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

export async function readLastLines(file: string, n: number, maxBytes = MAX_HISTORY_BYTES): Promise<Buffer> {
  return (await lastLinesOf(file, n, maxBytes)).data;
}

export interface LastLines {
  data: Buffer;
  /** The whole file was read (or there is none): older history can only be in another file. */
  whole: boolean;
  /** Bytes read, for a caller that spreads one budget over several files. */
  bytesRead: number;
}

const NOTHING: LastLines = { data: EMPTY, whole: true, bytesRead: 0 };

export async function lastLinesOf(file: string, n: number, maxBytes = MAX_HISTORY_BYTES): Promise<LastLines> {
  if (n <= 0 || maxBytes <= 0) return { data: EMPTY, whole: n <= 0, bytesRead: 0 };
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return NOTHING;
    throw err;
  }
  try {
    const size = (await handle.stat()).size;
    const chunks: Buffer[] = [];
    let pos = size;
    /** Offsets in the file: the end of the last complete line, the start of the first wanted one. */
    let end = -1;
    let start = -1;
    let newlines = 0;
    while (pos > 0 && size - pos < maxBytes && start < 0) {
      const len = Math.min(CHUNK, pos, maxBytes - (size - pos));
      pos -= len;
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await handle.read(buf, got, len - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < len) {
        pos += len; // truncated while reading: serve what is complete
        break;
      }
      chunks.unshift(buf);
      let i = len - 1;
      while (i >= 0) {
        const nl = buf.lastIndexOf(10, i);
        if (nl < 0) break;
        newlines++;
        if (end < 0) end = pos + nl + 1;
        else if (newlines === n + 1) {
          start = pos + nl + 1;
          break;
        }
        i = nl - 1;
      }
    }
    if (end < 0) return { data: EMPTY, whole: pos === 0, bytesRead: size - pos };
    if (start < 0) {
      if (pos === 0) start = 0;
      else {
        // Stopped at the byte limit: begin after the first newline seen, on a whole line.
        const all = Buffer.concat(chunks);
        const first = all.indexOf(10);
        start = pos + first + 1;
      }
    }
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    return { data: all.subarray(start - pos, end - pos), whole: start === 0, bytesRead: size - pos };
  } finally {
    await handle.close();
  }
}

/**
 * A log file left by a shipper that died in the middle of a write (SIGKILL, OOM, power) can
 * end in half a line. Its batch was never acknowledged, so the router sends it again, whole:
 * the half line would stay in the file as garbage before the resent copy. Cut it off before
 * the first append of this process — our own failed writes are cut back where they fail
 * (app-file.ts), so only a file's first open needs the check.
 */
import { open } from 'node:fs/promises';
import { MAX_LINE_BYTES } from '../../../proto/log-batch.js';

/**
 * Truncates `file` (open for writing as `handle`, `size` bytes long) after its last '\n'
 * when it does not end with one; returns the size it now has. A last line longer than any
 * valid line is cut whole.
 */
export async function cutTornTail(file: string, handle: { truncate(bytes: number): Promise<void> }, size: number): Promise<number> {
  if (size === 0) return 0;
  const reader = await open(file, 'r');
  try {
    const span = Math.min(size, MAX_LINE_BYTES + 1);
    const tail = Buffer.allocUnsafe(span);
    const { bytesRead } = await reader.read(tail, 0, span, size - span);
    if (bytesRead === span && tail[span - 1] === 0x0a) return size;
    const lastNewline = tail.subarray(0, bytesRead).lastIndexOf(0x0a);
    const keep = lastNewline < 0 ? Math.max(0, size - span) : size - span + lastNewline + 1;
    await handle.truncate(keep);
    return keep;
  } finally {
    await reader.close();
  }
}

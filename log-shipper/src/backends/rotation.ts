/**
 * Size rotation, logrotate's numbering: router.log.(keep-1) → router.log.keep (overwriting the
 * oldest), …, router.log → router.log.1. Runs while the file is closed and its queue is held,
 * so no write of this shipper lands in the middle.
 */
import { rename, unlink } from 'node:fs/promises';

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}

export async function rotateFile(file: string, keep: number): Promise<void> {
  if (keep === 0) {
    await unlink(file).catch(ignoreMissing);
    return;
  }
  for (let i = keep - 1; i >= 1; i--) await rename(`${file}.${i}`, `${file}.${i + 1}`).catch(ignoreMissing);
  await rename(file, `${file}.1`).catch(ignoreMissing);
}

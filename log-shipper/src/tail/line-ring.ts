/**
 * The recent lines of each app, kept in memory for tail history when the file backend is
 * off (LOG_TAIL_BUFFER_LINES per app, LOG_TAIL_BUFFER_BYTES in all). Stored as copied
 * chunks (one per app per batch), not lines: appending costs one copy, no per-line objects;
 * a copy, because a view would pin the whole batch buffer it came from.
 */
import { LRUCache } from 'lru-cache';

class AppRing {
  chunks: Buffer[] = [];
  counts: number[] = [];
  lines = 0;
  bytes = 0;
}

/** Offset of the start of the line that has `keep` lines after it, from the end of `data`. */
function startOfLast(data: Buffer, lines: number, keep: number): number {
  let at = 0;
  for (let skip = lines - keep; skip > 0; skip--) at = data.indexOf(10, at) + 1;
  return at;
}

export class LineRings {
  private readonly apps: LRUCache<string, AppRing>;

  constructor(
    private readonly linesPerApp: number,
    maxBytes: number,
  ) {
    this.apps = new LRUCache<string, AppRing>({ maxSize: maxBytes, sizeCalculation: (ring) => Math.max(1, ring.bytes) });
  }

  append(app: string, data: Buffer, lines: number): void {
    let ring = this.apps.get(app);
    if (ring === undefined) ring = new AppRing();
    const kept = lines > this.linesPerApp ? data.subarray(startOfLast(data, lines, this.linesPerApp)) : data;
    const keptLines = Math.min(lines, this.linesPerApp);
    ring.chunks.push(Buffer.from(kept));
    ring.counts.push(keptLines);
    ring.lines += keptLines;
    ring.bytes += kept.length;
    while (ring.lines - ring.counts[0]! >= this.linesPerApp) {
      ring.lines -= ring.counts.shift()!;
      ring.bytes -= ring.chunks.shift()!.length;
    }
    // Set again so the LRU learns the new size and may forget other apps to make room
    // (lru-cache keeps the old size when `set` is given the object it already holds).
    this.apps.delete(app);
    this.apps.set(app, ring);
  }

  /** The last `n` lines of the app (fewer when it has fewer, never more than LOG_TAIL_BUFFER_LINES), as NDJSON. */
  last(app: string, n: number): Buffer {
    // Whole chunks are dropped, so the ring may hold a few lines more than the bound: never serve them.
    n = Math.min(n, this.linesPerApp);
    const ring = this.apps.peek(app);
    if (ring === undefined || n <= 0) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    let have = 0;
    for (let i = ring.chunks.length - 1; i >= 0 && have < n; i--) {
      const chunk = ring.chunks[i]!;
      const count = ring.counts[i]!;
      if (have + count <= n) {
        parts.push(chunk);
        have += count;
      } else {
        parts.push(chunk.subarray(startOfLast(chunk, count, n - have)));
        have = n;
      }
    }
    return Buffer.concat(parts.reverse());
  }
}

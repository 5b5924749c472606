/**
 * One tail client: lines go to its HTTP response as NDJSON (as they came) or as SSE
 * (`data: <line>\n\n`). Never waits for the client: when more than `maxBuffered` bytes are
 * queued in the response, lines for it are dropped and counted, and once it has caught up
 * it is told how many (`{"dropped":N}` / `: dropped N`), so a slow reader costs the
 * ingest path nothing but the count.
 */
import type { ServerResponse } from 'node:http';
import type { ShipperMetrics } from '../metrics.js';

export type TailFormat = 'ndjson' | 'sse';

const SSE_PREFIX = Buffer.from('data: ');

/** Each line of `ndjson` (whole lines) as an SSE event, in one buffer. */
export function toSse(ndjson: Buffer, lines: number): Buffer {
  const out = Buffer.allocUnsafe(ndjson.length + lines * (SSE_PREFIX.length + 1));
  let at = 0;
  let i = 0;
  while (i < ndjson.length) {
    let nl = ndjson.indexOf(10, i);
    if (nl < 0) nl = ndjson.length;
    at += SSE_PREFIX.copy(out, at);
    at += ndjson.copy(out, at, i, nl);
    out[at++] = 10;
    out[at++] = 10;
    i = nl + 1;
  }
  return at === out.length ? out : out.subarray(0, at);
}

function countLines(data: Buffer): number {
  let n = 0;
  let i = data.indexOf(10);
  while (i >= 0) {
    n++;
    i = data.indexOf(10, i + 1);
  }
  return n;
}

export class Subscriber {
  private dropped = 0;
  private closed = false;
  /** Live lines that arrived while the history was being read (see prime/start). */
  private pending: Array<{ data: Buffer; lines: number }> | null = [];
  private pendingBytes = 0;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    private readonly res: ServerResponse,
    private readonly format: TailFormat,
    private readonly maxBuffered: number,
    private readonly metrics: ShipperMetrics,
  ) {
    res.on('drain', () => this.reportDropped());
    if (format === 'sse') {
      // Keeps proxies from closing an idle stream.
      this.heartbeat = setInterval(() => this.writeRaw(': ping\n\n'), 15_000);
      this.heartbeat.unref();
    }
  }

  /** Called by the hub for each accepted chunk of this app's lines. */
  push(data: Buffer, lines: number): void {
    if (this.closed) return;
    if (this.pending !== null) {
      if (this.pendingBytes + data.length > this.maxBuffered) return this.drop(lines);
      this.pending.push({ data, lines });
      this.pendingBytes += data.length;
      return;
    }
    if (this.res.writableLength > this.maxBuffered) return this.drop(lines);
    this.reportDropped();
    this.res.write(this.format === 'sse' ? toSse(data, lines) : data);
  }

  /**
   * Sends the history, then what arrived meanwhile, minus the lines the history already
   * holds (a chunk can be written to the file before the history read and published after).
   */
  start(history: Buffer): void {
    if (this.closed) return;
    const pending = this.pending ?? [];
    this.pending = null;
    this.pendingBytes = 0;
    if (history.length > 0) this.res.write(this.format === 'sse' ? toSse(history, countLines(history)) : history);
    if (pending.length === 0) return;
    const seen = history.length > 0 ? new Set(history.toString('utf8').split('\n')) : null;
    for (const chunk of pending) {
      if (seen === null) {
        this.push(chunk.data, chunk.lines);
        continue;
      }
      const fresh = chunk.data
        .toString('utf8')
        .split('\n')
        .filter((line) => line.length > 0 && !seen.has(line));
      if (fresh.length > 0) this.push(Buffer.from(`${fresh.join('\n')}\n`), fresh.length);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    if (!this.res.writableEnded) this.res.end();
  }

  private drop(lines: number): void {
    this.dropped += lines;
    this.metrics.tailLinesDropped.inc(lines);
  }

  private reportDropped(): void {
    if (this.dropped === 0 || this.closed || this.res.writableLength > this.maxBuffered) return;
    const n = this.dropped;
    this.dropped = 0;
    this.writeRaw(this.format === 'sse' ? `: dropped ${n}\n\n` : `{"dropped":${n}}\n`);
  }

  private writeRaw(text: string): void {
    if (!this.closed && !this.res.writableEnded) this.res.write(text);
  }
}

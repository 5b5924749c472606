/**
 * The benchmark's router stand-in: one connection speaking proto/log-batch.ts, sending
 * 64 KB batches at a constant rate (paced by the clock, not by the acks) with a bounded
 * window of unacked batches, and counting the lines the shipper acknowledged. When the
 * shipper falls behind, the window fills, sending stalls and the schedule slips: what was
 * due but not acked at the end is the "remaining" figure, as in Scalingo's experiment.
 */
import net from 'node:net';
import { AckStatus, decodeAck, encodeBatch, encodeHello, FrameDecoder, FrameType, LOG_PROTOCOL_MAGIC } from '../../proto/log-batch.js';

/** Every line has exactly this many bytes with its '\n': files are counted by size. */
export const LINE_BYTES = 320;

/** A realistic access-log line of the router's shape, padded to LINE_BYTES. */
export function line(app: string, i: number): string {
  const base = `{"at":${1763856000000 + i},"code":"-","app":"${app}","method":"GET","host":"${app}.example.org","path":"/products/${i % 9973}?page=2","status":200,"bytes_in":0,"bytes_out":5120,"connect_ms":0,"service_ms":12,"request_id":"r${i}","container":"${app}-web-1","client_ip":"203.0.113.7","protocol":"http/1.1","pad":"`;
  const pad = LINE_BYTES - 1 - base.length - 2;
  if (pad < 0) throw new Error(`line for ${app} too long`);
  return `${base}${'x'.repeat(pad)}"}`;
}

export interface SenderStats {
  batchesSent: number;
  linesSent: number;
  linesAcked: number;
  batchesAcked: number;
  badAcks: number;
}

let connections = 0;

export class BatchSender {
  readonly stats: SenderStats = { batchesSent: 0, linesSent: 0, linesAcked: 0, batchesAcked: 0, badAcks: 0 };
  private socket!: net.Socket;
  private seq = 0;
  private readonly inflight = new Map<number, number>();
  private ready!: Promise<void>;
  private drainWaiters: Array<() => void> = [];

  constructor(
    private readonly port: number,
    private readonly token: string,
    private readonly window: number,
  ) {}

  async connect(): Promise<void> {
    this.socket = net.connect({ host: '127.0.0.1', port: this.port });
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      const decoder = new FrameDecoder(
        (type, body) => {
          if (type === FrameType.READY) resolve();
          else if (type === FrameType.ERROR) reject(new Error(`shipper refused: ${body.toString('utf8')}`));
          else if (type === FrameType.ACK) this.onAck(decodeAck(body));
        },
        () => undefined,
      );
      this.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
      this.socket.once('error', reject);
      this.socket.once('close', () => reject(new Error('shipper closed the connection')));
    });
    // A router id per connection: seq numbers are scoped by it, and the shipper skips a seq it already wrote.
    this.socket.write(Buffer.concat([LOG_PROTOCOL_MAGIC, encodeHello({ token: this.token, router: `logs-bench:${process.pid}:${Date.now()}:${++connections}` })]));
    await this.ready;
  }

  private onAck(ack: { seq: number; status: number }): void {
    const lines = this.inflight.get(ack.seq);
    if (lines === undefined) return;
    this.inflight.delete(ack.seq);
    if (ack.status === AckStatus.OK) {
      this.stats.linesAcked += lines;
      this.stats.batchesAcked++;
    } else {
      this.stats.badAcks++;
    }
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /** False when the window is full: the caller is behind schedule. */
  canSend(): boolean {
    return this.inflight.size < this.window && this.socket.writableLength < 8 * 1024 * 1024;
  }

  send(sections: ReadonlyArray<{ app: string; data: Buffer }>, lines: number): void {
    const seq = ++this.seq;
    this.inflight.set(seq, lines);
    this.socket.write(encodeBatch(seq, sections));
    this.stats.batchesSent++;
    this.stats.linesSent += lines;
  }

  unacked(): number {
    return this.inflight.size;
  }

  /** Resolves when every batch sent was acked, or after `timeoutMs`. */
  async settle(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.inflight.size > 0 && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.drainWaiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return this.inflight.size === 0;
  }

  close(): void {
    this.socket.destroy();
  }
}

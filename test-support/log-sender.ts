/**
 * A minimal router-side client of the log batch protocol (proto/log-batch.ts), for tests and
 * benchmarks that drive the log shipper without a router: connects, sends the magic and
 * HELLO, then batches built with encodeBatch; acks resolve in order, pipelined.
 */
import net from 'node:net';
import {
  FrameDecoder,
  FrameType,
  LOG_PROTOCOL_MAGIC,
  decodeAck,
  encodeBatch,
  encodeHello,
  type Ack,
} from '../proto/log-batch.js';

export interface SenderOptions {
  port: number;
  token: string;
  /** The HELLO router id (the scope of seqs); default: unique per sender. */
  router?: string;
  host?: string;
}

let senders = 0;

export class LogSender {
  private readonly waiting: Array<{ seq: number | null; resolve: (ack: Ack) => void; reject: (err: Error) => void }> = [];
  private readonly decoder: FrameDecoder;
  /** The message of an ERROR frame, if one came. */
  error: string | null = null;
  readonly ready: Promise<void>;
  readonly closed: Promise<void>;
  readonly router: string;
  private onReady!: () => void;
  private onRefused!: (err: Error) => void;

  private constructor(
    readonly socket: net.Socket,
    router: string,
  ) {
    this.router = router;
    this.ready = new Promise((resolve, reject) => {
      this.onReady = resolve;
      this.onRefused = reject;
    });
    this.ready.catch(() => undefined);
    this.decoder = new FrameDecoder(
      (type, body) => this.onFrame(type, body),
      () => this.fail(new Error('oversized frame from the shipper')),
    );
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', (err) => this.fail(err));
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.fail(new Error(this.error ?? 'connection closed'));
        resolve();
      }),
    );
  }

  /** Connects and says HELLO; resolves once READY (rejects on ERROR). Use `open` to not wait. */
  static async connect(options: SenderOptions): Promise<LogSender> {
    const sender = LogSender.open(options);
    await sender.ready;
    return sender;
  }

  /** Connects and sends the magic + HELLO without waiting for the answer. */
  static open(options: SenderOptions): LogSender {
    const socket = net.connect({ port: options.port, host: options.host ?? '127.0.0.1', noDelay: true });
    const sender = new LogSender(socket, options.router ?? `test-sender:${process.pid}:${++senders}:${Date.now()}`);
    socket.write(Buffer.concat([LOG_PROTOCOL_MAGIC, encodeHello({ token: options.token, router: sender.router })]));
    return sender;
  }

  /** Sends a batch; resolves with its ACK. Several may be in flight: acks come in order. */
  send(seq: number, sections: ReadonlyArray<{ app: string; data: Buffer | string }>): Promise<Ack> {
    return this.sendRaw(
      encodeBatch(
        seq,
        sections.map((s) => ({ app: s.app, data: typeof s.data === 'string' ? Buffer.from(s.data) : s.data })),
      ),
      seq,
    );
  }

  /** Sends prepared frame bytes that expect one ACK (`seq` checked when given). */
  sendRaw(frame: Buffer, seq: number | null = null): Promise<Ack> {
    return new Promise<Ack>((resolve, reject) => {
      this.waiting.push({ seq, resolve, reject });
      this.socket.write(frame);
    });
  }

  /** Bytes with no answer expected (a truncated frame, a second HELLO...). */
  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }

  private onFrame(type: FrameType, body: Buffer): void {
    if (type === FrameType.READY) return this.onReady();
    if (type === FrameType.ERROR) {
      this.error = body.toString('utf8');
      this.onRefused(new Error(`shipper refused: ${this.error}`));
      return;
    }
    if (type !== FrameType.ACK) return this.fail(new Error(`unexpected frame ${type}`));
    const ack = decodeAck(body);
    const next = this.waiting.shift();
    if (next === undefined) return this.fail(new Error(`ACK ${ack.seq} with nothing in flight`));
    if (next.seq !== null && next.seq !== ack.seq) return next.reject(new Error(`ACK out of order: got ${ack.seq}, expected ${next.seq}`));
    next.resolve(ack);
  }

  private fail(err: Error): void {
    this.onRefused(err);
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}

/** NDJSON of `count` lines for `app`, numbered from `from`: `{"app":"a","n":0,...}`. */
export function lines(app: string, from: number, count: number, pad = 0): string {
  let out = '';
  const filler = pad > 0 ? 'x'.repeat(pad) : '';
  for (let i = from; i < from + count; i++) out += `{"app":"${app}","n":${i}${pad > 0 ? `,"pad":"${filler}"` : ''}}\n`;
  return out;
}

/**
 * A small, real log-shipper endpoint for router tests: it speaks proto/log-batch.ts over TCP
 * (magic, HELLO with a token check, READY or ERROR, BATCH answered by ACK in order) and
 * records what it "wrote". Misbehaviour on demand: UNAVAILABLE or another status for the
 * next batches, a dropped connection after N batches, delayed acks, stop and restart on the
 * same port.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import {
  AckStatus,
  FrameDecoder,
  FrameType,
  LOG_PROTOCOL_MAGIC,
  batchSeq,
  decodeHello,
  decodeSections,
  encodeAck,
  encodeError,
  encodeReady,
} from '../proto/log-batch.js';

export interface ReceivedBatch {
  router: string;
  seq: number;
  sections: Array<{ app: string; lines: string[] }>;
}

export interface LogReceiverOptions {
  token?: string;
  /** Listen on this port (default: a free one). */
  port?: number;
}

export class LogReceiver {
  /** Batches written (acked OK, or taken before the connection was dropped on purpose), duplicates included, in arrival order. */
  readonly batches: ReceivedBatch[] = [];
  /** Router ids of accepted HELLOs, one per connection. */
  readonly hellos: string[] = [];
  /** HELLOs refused for their token. */
  refused = 0;
  /** Answer the next `unavailable` batches with UNAVAILABLE (nothing written). */
  unavailable = 0;
  /** Answer the next batches with this status instead of OK, `statusCount` times (MALFORMED, TOO_LARGE). */
  status: AckStatus = AckStatus.OK;
  statusCount = 0;
  /** Take this many batches on a connection, then drop it without acking the last one. */
  dropAfter: number | null = null;
  /** Delay before each ack (acks stay in order). */
  ackDelayMs = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly token: string,
    public port: number,
  ) {}

  static async start(options: LogReceiverOptions = {}): Promise<LogReceiver> {
    const receiver = new LogReceiver(options.token ?? 'test-log-token', options.port ?? 0);
    await receiver.listen();
    return receiver;
  }

  get url(): string {
    return `tcp://127.0.0.1:${this.port}`;
  }

  /** Every line written, parsed, with the section it came in. */
  lines(): Array<{ app: string; line: Record<string, unknown> }> {
    const out: Array<{ app: string; line: Record<string, unknown> }> = [];
    for (const b of this.batches) for (const s of b.sections) for (const l of s.lines) out.push({ app: s.app, line: JSON.parse(l) as Record<string, unknown> });
    return out;
  }

  lineCount(): number {
    let n = 0;
    for (const b of this.batches) for (const s of b.sections) n += s.lines.length;
    return n;
  }

  /** Closes the listener and every connection (the port stays known for restart). */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async restart(): Promise<void> {
    await this.listen();
  }

  async close(): Promise<void> {
    await this.stop();
  }

  private async listen(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let magic = Buffer.alloc(0);
    let greeted = false;
    let taken = 0;
    let router = '';
    let dropping = false;
    // Acks are chained so a delay never reorders them.
    let acks = Promise.resolve();
    const ack = (seq: number, status: AckStatus, lines: number): void => {
      acks = acks.then(async () => {
        if (this.ackDelayMs > 0) await new Promise((r) => setTimeout(r, this.ackDelayMs));
        if (!socket.destroyed) socket.write(encodeAck({ seq, status, accepted: status === AckStatus.OK ? lines : 0, rejected: 0, message: status === AckStatus.OK ? '' : 'test receiver says no' }));
      });
    };
    const decoder = new FrameDecoder(
      (type, body) => {
        if (!greeted) {
          if (type !== FrameType.HELLO) return void socket.destroy();
          const hello = decodeHello(body);
          if (hello.token !== this.token) {
            this.refused++;
            socket.end(encodeError('invalid token'));
            return;
          }
          greeted = true;
          router = hello.router;
          this.hellos.push(router);
          socket.write(encodeReady());
          return;
        }
        if (type !== FrameType.BATCH) return void socket.destroy();
        if (dropping) return;
        const seq = batchSeq(body);
        const sections = decodeSections(body).map((s) => ({ app: s.app, lines: s.data.toString('utf8').split('\n').slice(0, -1) }));
        const lineCount = sections.reduce((n, s) => n + s.lines.length, 0);
        if (this.unavailable > 0) {
          this.unavailable--;
          ack(seq, AckStatus.UNAVAILABLE, 0);
          return;
        }
        if (this.statusCount > 0) {
          this.statusCount--;
          ack(seq, this.status, 0);
          return;
        }
        this.batches.push({ router, seq, sections });
        taken++;
        if (this.dropAfter !== null && taken >= this.dropAfter) {
          // The acks of the batches before go out first; this one and any later are never answered.
          dropping = true;
          acks = acks.then(() => void socket.destroy());
          return;
        }
        ack(seq, AckStatus.OK, lineCount);
      },
      (_type, _length, seq) => {
        if (seq !== null) ack(seq, AckStatus.TOO_LARGE, 0);
        else socket.destroy();
      },
    );
    socket.on('data', (chunk: Buffer) => {
      if (magic.length < LOG_PROTOCOL_MAGIC.length) {
        magic = Buffer.concat([magic, chunk]);
        if (magic.length < LOG_PROTOCOL_MAGIC.length) return;
        if (!magic.subarray(0, LOG_PROTOCOL_MAGIC.length).equals(LOG_PROTOCOL_MAGIC)) return void socket.destroy();
        chunk = magic.subarray(LOG_PROTOCOL_MAGIC.length);
        if (chunk.length === 0) return;
      }
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  }
}

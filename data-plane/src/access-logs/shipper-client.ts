/**
 * The router's connection to the log-shipper (proto/log-batch.ts): one persistent TCP
 * connection per process, up to WINDOW batches in flight, acks in order.
 *
 * Every batch stays in the spool until the shipper acks it OK. A lost connection is made
 * again with a capped, jittered exponential backoff, and the batches it left unacknowledged
 * are sent again first, in order, with their original seq (the shipper may have written
 * them: counted as retransmitted). UNAVAILABLE: the batch is sent again after a backoff,
 * once the batches in flight behind it are answered, so resends keep seq order. MALFORMED
 * and TOO_LARGE: resending cannot help; the batch is dropped and counted. ERROR (a refused
 * token): logged, and retried with the backoff, since the token may be fixed on the shipper.
 *
 * Everything here runs from timers and socket callbacks, never from a request.
 */
import net, { type Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  AckStatus,
  FrameDecoder,
  FrameType,
  LOG_PROTOCOL_MAGIC,
  LogProtocolError,
  MAX_SEQ,
  decodeAck,
  encodeBatch,
  encodeHello,
} from '../../../proto/log-batch.js';
import type { CutBatch } from './batcher.js';
import { Deque } from './deque.js';
import type { DropReport } from './drop-report.js';
import type { AccessLogMetrics } from './metrics.js';
import { Spool, type SpoolEntry } from './spool.js';
import { ThrottledLog } from './throttled-log.js';

export interface ShipperClientOptions {
  host: string;
  port: number;
  token: string;
  /** Unique per process: the scope of seq numbers at the shipper. */
  routerId: string;
  spoolBytes: number;
  metrics: AccessLogMetrics;
  drops: DropReport;
  log: Logger;
  /** Batches in flight without an ack. */
  window?: number;
  /** First and largest reconnection delays. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

type State = 'queued' | 'inflight' | 'dropped';

interface Shipped extends SpoolEntry {
  readonly seq: number;
  frame: Buffer;
  readonly lineCount: number;
  state: State;
  /** It was in flight when a connection was lost: the shipper may have it already. */
  maybeDelivered: boolean;
}

const DEFAULT_WINDOW = 16;
/** A connection that has not answered HELLO in this time is given up. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Batches in flight and nothing heard for this long: the connection is presumed dead. */
const ACK_TIMEOUT_MS = 30_000;
const EMPTY = Buffer.alloc(0);

export class ShipperClient {
  private readonly spool: Spool<Shipped>;
  /** Batches sent on the current connection, in order, awaiting their ack (dropped ones too: their ack is ignored). */
  private readonly awaiting = new Deque<Shipped>();
  private readonly window: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly throttled: ThrottledLog;
  private socket: Socket | null = null;
  private ready = false;
  private connectedOnce = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** After an UNAVAILABLE ack: nothing is sent before `holdUntil`, nor while batches are in flight. */
  private holding = false;
  private holdUntil = 0;
  private unavailableStreak = 0;
  private holdTimer: NodeJS.Timeout | null = null;
  private nextSeq = 1;
  private closed = false;
  /** The last connection ended in an ERROR frame (a refused token): close() does not wait for it. */
  private refused = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: ShipperClientOptions) {
    this.window = options.window ?? DEFAULT_WINDOW;
    this.backoffMinMs = options.backoffMinMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 5000;
    this.throttled = new ThrottledLog(options.log);
    this.spool = new Spool<Shipped>(options.spoolBytes, (entry) => this.onSpoolDrop(entry));
    options.metrics.shipperUp.set(0);
    this.connect();
  }

  /** Batches not yet acknowledged. */
  get pendingBatches(): number {
    return this.spool.length;
  }

  get connected(): boolean {
    return this.ready;
  }

  enqueue(batch: CutBatch): void {
    if (this.closed) {
      this.options.drops.drop({ apps: batch.sections.map((s) => s.app), lines: batch.lines }, 'shutdown');
      return;
    }
    const seq = this.nextSeq;
    this.nextSeq = seq === MAX_SEQ ? 1 : seq + 1;
    const frame = encodeBatch(seq, batch.sections);
    this.spool.add({
      seq,
      frame,
      bytes: frame.length,
      apps: batch.sections.map((s) => s.app),
      lines: batch.lines,
      lineCount: batch.lineCount,
      state: 'queued',
      maybeDelivered: false,
    });
    this.options.metrics.spoolBytes.set(this.spool.bytes);
    this.pump();
  }

  /** Resolves when every batch is acknowledged (or dropped), or after `timeoutMs`; then closes. Returns the batches left. */
  async close(timeoutMs: number): Promise<number> {
    if (this.spool.length > 0 && !this.closed && !this.refused) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.closed = true;
    for (const timer of [this.reconnectTimer, this.holdTimer]) if (timer !== null) clearTimeout(timer);
    this.reconnectTimer = this.holdTimer = null;
    const left = this.spool.length;
    for (let entry = this.spool.shift(); entry !== undefined; entry = this.spool.shift()) this.options.drops.drop(entry, 'shutdown');
    this.options.metrics.spoolBytes.set(0);
    this.socket?.destroy();
    this.socket = null;
    this.ready = false;
    this.options.metrics.shipperUp.set(0);
    return left;
  }

  private connect(): void {
    this.reconnectTimer = null;
    if (this.closed) return;
    if (this.connectedOnce) this.options.metrics.reconnects.inc();
    this.connectedOnce = true;
    const { host, port } = this.options;
    const socket = net.connect({ host, port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS);
    const decoder = new FrameDecoder(
      (type, body) => this.onFrame(socket, type, body),
      (type, length) => {
        throw new LogProtocolError(`frame of type ${type} and ${length} bytes from the log-shipper`);
      },
    );
    socket.on('connect', () => {
      socket.write(Buffer.concat([LOG_PROTOCOL_MAGIC, encodeHello({ token: this.options.token, router: this.options.routerId })]));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (err) {
        this.throttled.write('error', 'protocol', { err: (err as Error).message }, 'log-shipper sent something this router does not understand; reconnecting');
        socket.destroy();
      }
    });
    socket.on('timeout', () => {
      if (!this.ready || this.awaiting.length > 0) {
        this.throttled.write('warn', 'timeout', { host, port, ready: this.ready, inflight: this.awaiting.length }, 'log-shipper connection silent; reconnecting');
        socket.destroy();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.throttled.write('warn', `socket:${err.code ?? err.message}`, { host, port, err: err.message, spooledBatches: this.spool.length }, 'log-shipper connection failed; access logs are spooled meanwhile');
    });
    socket.on('close', () => this.onClose(socket));
  }

  private onFrame(socket: Socket, type: FrameType, body: Buffer): void {
    if (socket !== this.socket) return;
    if (type === FrameType.READY && !this.ready) {
      this.ready = true;
      this.refused = false;
      this.attempt = 0;
      socket.setTimeout(ACK_TIMEOUT_MS);
      this.options.metrics.shipperUp.set(1);
      this.throttled.write('info', 'connected', { host: this.options.host, port: this.options.port, spooledBatches: this.spool.length }, 'connected to the log-shipper');
      this.pump();
    } else if (type === FrameType.ACK && this.ready) {
      this.onAck(socket, body);
    } else if (type === FrameType.ERROR) {
      this.refused = true;
      this.throttled.write('error', 'refused', { host: this.options.host, port: this.options.port, message: body.toString('utf8', 0, 500) }, 'log-shipper refused this router (check LOG_SHIPPER_TOKEN); retrying');
      socket.destroy();
    } else {
      throw new LogProtocolError(`unexpected frame type ${type}${this.ready ? '' : ' before READY'}`);
    }
  }

  private onAck(socket: Socket, body: Buffer): void {
    const ack = decodeAck(body);
    const entry = this.awaiting.shift();
    if (entry === undefined || entry.seq !== ack.seq) {
      throw new LogProtocolError(`ack for seq ${ack.seq}, expected ${entry === undefined ? 'none' : entry.seq}`);
    }
    const { metrics, drops } = this.options;
    metrics.ack(ack.status);
    // Dropped from the spool while in flight (overflow): nothing more to do, whatever the answer.
    if (entry.state !== 'dropped') {
      if (ack.status === AckStatus.OK) {
        this.spool.remove(entry);
        this.unavailableStreak = 0;
        metrics.shippedLines.inc(entry.lineCount);
        metrics.shippedBatches.inc();
        metrics.shippedBytes.inc(entry.bytes);
      } else if (ack.status === AckStatus.UNAVAILABLE) {
        // Nothing was written: sending it again is no duplicate.
        entry.state = 'queued';
        entry.maybeDelivered = false;
        this.hold(this.backoff(this.unavailableStreak++));
      } else {
        this.spool.remove(entry);
        drops.drop(entry, 'refused');
        this.throttled.write('error', `refused:${ack.status}`, { seq: ack.seq, status: ack.status, message: ack.message, bytes: entry.bytes }, 'log-shipper refused an access-log batch (a router bug); dropped');
      }
      metrics.spoolBytes.set(this.spool.bytes);
    }
    if (socket.destroyed) return;
    this.pump();
    this.notifyIfIdle();
  }

  private hold(ms: number): void {
    this.holding = true;
    this.holdUntil = Math.max(this.holdUntil, Date.now() + ms);
  }

  /** Sends queued batches, oldest first, while the window has room. */
  private pump(): void {
    const socket = this.socket;
    if (!this.ready || socket === null || this.closed) return;
    if (this.holding) {
      if (this.awaiting.length > 0) return;
      const wait = this.holdUntil - Date.now();
      if (wait > 0) {
        if (this.holdTimer === null) {
          this.holdTimer = setTimeout(() => {
            this.holdTimer = null;
            this.pump();
          }, wait);
          this.holdTimer.unref();
        }
        return;
      }
      this.holding = false;
    }
    // Batches in flight are the spool's first ones (resends happen only once none is in flight).
    let i = 0;
    while (this.awaiting.length < this.window) {
      let entry = this.spool.at(i);
      while (entry !== undefined && entry.state === 'inflight') entry = this.spool.at(++i);
      if (entry === undefined) break;
      entry.state = 'inflight';
      if (entry.maybeDelivered) this.options.metrics.retransmitted.inc();
      this.awaiting.push(entry);
      socket.write(entry.frame);
    }
  }

  private onClose(socket: Socket): void {
    if (socket !== this.socket) return;
    this.socket = null;
    const wasReady = this.ready;
    this.ready = false;
    this.options.metrics.shipperUp.set(0);
    if (wasReady) this.throttled.write('warn', 'lost', { host: this.options.host, port: this.options.port, inflight: this.awaiting.length }, 'log-shipper connection lost; reconnecting');
    for (let entry = this.awaiting.shift(); entry !== undefined; entry = this.awaiting.shift()) {
      if (entry.state !== 'inflight') continue;
      entry.state = 'queued';
      entry.maybeDelivered = true;
    }
    if (this.closed) return;
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoff(this.attempt++));
    this.reconnectTimer.unref();
  }

  /** 100 ms, 200 ms, … up to 5 s, each between half and all of it (jitter: routers restarted together do not reconnect together). */
  private backoff(attempt: number): number {
    const ceiling = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(attempt, 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  private onSpoolDrop(entry: Shipped): void {
    // In flight: it stays in `awaiting` so acks still line up, but its ack will be ignored.
    if (entry.state === 'inflight') entry.state = 'dropped';
    entry.frame = EMPTY;
    this.options.drops.drop(entry, 'spool_full');
  }

  private notifyIfIdle(): void {
    if (this.spool.length > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

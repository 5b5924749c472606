/**
 * One router connection, after the protocol magic: HELLO within the deadline with a valid
 * token, then BATCH frames answered by ACKs in order.
 *
 * Batches are pipelined: each is handed to the backends as soon as it is decoded (so a
 * router's window of unacked batches keeps the disk busy), and acks leave in arrival order
 * as the head of the pipeline completes. Backpressure: with WINDOW batches waiting on the
 * backends, the socket stops being read, so a slow disk slows the senders (TCP fills up)
 * instead of growing memory here.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  AckStatus,
  FrameDecoder,
  FrameType,
  LogProtocolError,
  batchSeq,
  decodeHello,
  encodeAck,
  encodeError,
  encodeReady,
  type Ack,
} from '../../../proto/log-batch.js';
import type { TokenSet } from '../auth.js';
import type { AppLines } from '../backends/backend.js';
import type { AckLabel, ShipperMetrics } from '../metrics.js';
import type { TailHub } from '../tail/tail-hub.js';
import type { BatchProcessor } from './batch-processor.js';
import type { RouterSeqs, SeqLedger } from './router-seqs.js';

/** Batches of one connection in flight before its socket is paused. */
export const PIPELINE_WINDOW = 16;
/** After an ERROR frame, how long the peer has to close before the socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;

const ACK_LABELS: Record<AckStatus, AckLabel> = {
  [AckStatus.OK]: 'ok',
  [AckStatus.MALFORMED]: 'malformed',
  [AckStatus.TOO_LARGE]: 'too_large',
  [AckStatus.UNAVAILABLE]: 'unavailable',
};

export interface RouterConnectionDeps {
  tokens: TokenSet;
  processor: BatchProcessor;
  ledger: SeqLedger;
  hub: TailHub;
  metrics: ShipperMetrics;
  log: Logger;
}

interface Pending {
  ack: Ack | null;
  accepted: AppLines[] | null;
}

export class RouterConnection {
  private phase: 'hello' | 'ready' | 'closing' = 'hello';
  private router = '';
  private seqs: RouterSeqs | null = null;
  private readonly pipeline: Pending[] = [];
  private paused = false;
  private flushScheduled = false;
  private draining: (() => void) | null = null;
  private readonly decoder: FrameDecoder;
  private readonly helloTimer: NodeJS.Timeout;
  private readonly remote: string;
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: Socket,
    initial: Buffer,
    helloDeadlineMs: number,
    private readonly deps: RouterConnectionDeps,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    deps.metrics.routerConnections.inc();
    deps.metrics.routerConnectionsTotal.inc();
    socket.setNoDelay(true);
    this.decoder = new FrameDecoder(
      (type, body) => this.onFrame(type, body),
      (type, length, seq) => this.onOversized(type, length, seq),
    );
    this.helloTimer = setTimeout(() => {
      if (this.phase !== 'hello') return;
      deps.metrics.authFailures.inc({ kind: 'router', reason: 'hello_timeout' });
      this.fail(`no HELLO within ${helloDeadlineMs} ms`);
    }, Math.max(0, helloDeadlineMs));
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        clearTimeout(this.helloTimer);
        deps.metrics.routerConnections.dec();
        if (this.router !== '') deps.log.info({ router: this.router, remote: this.remote, unacked: this.pipeline.length }, 'router disconnected');
        resolve();
      });
    });
    socket.on('error', (err) => deps.log.debug({ err, remote: this.remote }, 'router connection error'));
    socket.on('data', (chunk: Buffer) => this.push(chunk));
    if (initial.length > 0) this.push(initial);
  }

  /**
   * Stops taking batches; once every batch already received is acknowledged, ends the
   * connection. Resolves when it is closed (the caller bounds the wait).
   */
  drain(): Promise<void> {
    this.phase = 'closing';
    this.socket.pause();
    this.paused = true;
    const end = (): void => {
      this.draining = null;
      // Reading again (input is ignored while closing) lets the peer's FIN in, so the socket closes.
      this.socket.resume();
      this.socket.end();
    };
    if (this.pipeline.length === 0) end();
    else this.draining = end;
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private push(chunk: Buffer): void {
    if (this.phase === 'closing') return;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof LogProtocolError)) throw err;
      this.deps.metrics.protocolErrors.inc();
      this.fail(err.message);
    }
  }

  private onFrame(type: FrameType, body: Buffer): void {
    if (this.phase === 'closing') return;
    if (this.phase === 'hello') {
      if (type !== FrameType.HELLO) {
        this.deps.metrics.authFailures.inc({ kind: 'router', reason: 'bad_hello' });
        return this.fail('HELLO must be the first frame');
      }
      return this.onHello(body);
    }
    if (type !== FrameType.BATCH) {
      this.deps.metrics.protocolErrors.inc();
      return this.fail(`unexpected frame type ${type} after HELLO (only BATCH)`);
    }
    let seq: number;
    try {
      seq = batchSeq(body);
    } catch (err) {
      this.deps.metrics.protocolErrors.inc();
      return this.fail((err as Error).message);
    }
    const pending: Pending = { ack: null, accepted: null };
    this.pipeline.push(pending);
    void this.deps.processor.process(this.router, this.seqs!, seq, body).then(
      (result) => {
        pending.ack = result.ack;
        pending.accepted = result.accepted;
        this.scheduleFlush();
      },
      (err: unknown) => {
        this.deps.log.error({ err, router: this.router, seq }, 'batch processing failed');
        pending.ack = { seq, status: AckStatus.UNAVAILABLE, accepted: 0, rejected: 0, message: 'internal error' };
        this.scheduleFlush();
      },
    );
    if (this.pipeline.length >= PIPELINE_WINDOW && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private onHello(body: Buffer): void {
    const { metrics, log, tokens } = this.deps;
    let hello;
    try {
      hello = decodeHello(body);
    } catch (err) {
      metrics.authFailures.inc({ kind: 'router', reason: 'bad_hello' });
      return this.fail((err as Error).message);
    }
    if (!tokens.accepts(hello.token)) {
      metrics.authFailures.inc({ kind: 'router', reason: 'bad_token' });
      log.warn({ remote: this.remote, router: hello.router }, 'router refused: invalid token');
      return this.fail('invalid token');
    }
    clearTimeout(this.helloTimer);
    this.phase = 'ready';
    this.router = hello.router;
    this.seqs = this.deps.ledger.of(hello.router);
    this.socket.write(encodeReady());
    log.info({ router: this.router, remote: this.remote }, 'router connected');
  }

  private onOversized(type: number, length: number, seq: number | null): void {
    if (this.phase !== 'ready' || type !== FrameType.BATCH || seq === null) {
      this.deps.metrics.protocolErrors.inc();
      return this.fail(`frame of type ${type} and ${length} bytes is over the limit`);
    }
    this.deps.metrics.batchesReceived.inc();
    this.deps.metrics.bytesReceived.inc(length);
    this.deps.metrics.batchesRefused.inc({ reason: 'too_large' });
    this.deps.log.warn({ router: this.router, seq, bytes: length }, 'oversized batch refused');
    this.pipeline.push({ ack: { seq, status: AckStatus.TOO_LARGE, accepted: 0, rejected: 0, message: `batch of ${length} bytes is over the limit` }, accepted: null });
    this.flush();
  }

  /**
   * Batches written together (one writev for several) complete in the same turn of the
   * event loop: their acks leave in one socket write, after that turn's promise callbacks.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Sends the acks at the head of the pipeline that are ready, in one write. */
  private flush(): void {
    const { socket, deps } = this;
    let corked = false;
    while (this.pipeline.length > 0 && this.pipeline[0]!.ack !== null) {
      const done = this.pipeline.shift()!;
      const ack = done.ack!;
      // Tails see the lines once they are written, in the order the router sent them.
      if (done.accepted !== null) deps.hub.publish(done.accepted);
      deps.metrics.acks.inc({ status: ACK_LABELS[ack.status] });
      if (socket.writable) {
        if (!corked) {
          socket.cork();
          corked = true;
        }
        socket.write(encodeAck(ack));
      }
    }
    if (corked) socket.uncork();
    if (this.pipeline.length === 0 && this.draining !== null) this.draining();
    else if (this.paused && this.phase === 'ready' && this.pipeline.length < PIPELINE_WINDOW) {
      this.paused = false;
      socket.resume();
    }
  }

  private fail(message: string): void {
    if (this.phase === 'closing') return;
    this.phase = 'closing';
    clearTimeout(this.helloTimer);
    this.deps.log.warn({ remote: this.remote, router: this.router || undefined, reason: message }, 'router connection refused');
    if (this.socket.writable) this.socket.end(encodeError(message));
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }
}

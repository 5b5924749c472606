/**
 * One batch, from its body to its ACK: decode the sections, skip it if its router had it
 * acknowledged already, keep the plausible lines, hand them to every backend, and say what
 * happened. The ACK itself is sent by the connection, in order (router-connection.ts).
 */
import type { Logger } from 'pino';
import { AckStatus, LogProtocolError, decodeSections, type Ack, type Section } from '../../../proto/log-batch.js';
import type { AppLines, LogBackend } from '../backends/backend.js';
import type { ShipperMetrics } from '../metrics.js';
import type { RouterSeqs } from './router-seqs.js';
import { splitBatch } from './split-lines.js';

export interface BatchResult {
  ack: Ack;
  /** The lines to show live tails, once the ACK goes out; null when nothing new was written. */
  accepted: AppLines[] | null;
}

/** Logs a recurring failure at most once per interval, with how many were not logged. */
class Throttled {
  private last = 0;
  private suppressed = 0;
  constructor(private readonly everyMs: number) {}
  run(log: (suppressed: number) => void): void {
    const now = Date.now();
    if (now - this.last < this.everyMs) {
      this.suppressed++;
      return;
    }
    this.last = now;
    log(this.suppressed);
    this.suppressed = 0;
  }
}

export class BatchProcessor {
  private readonly failureLog = new Throttled(10_000);
  private readonly malformedLog = new Throttled(10_000);

  constructor(
    private readonly backends: readonly LogBackend[],
    private readonly metrics: ShipperMetrics,
    private readonly log: Logger,
  ) {}

  /** Never rejects: a failure is an ACK status. */
  async process(router: string, seqs: RouterSeqs, seq: number, body: Buffer): Promise<BatchResult> {
    const { metrics } = this;
    metrics.batchesReceived.inc();
    metrics.bytesReceived.inc(body.length);
    let sections: Section[];
    try {
      sections = decodeSections(body);
    } catch (err) {
      if (!(err instanceof LogProtocolError)) throw err;
      metrics.batchesRefused.inc({ reason: 'malformed' });
      this.malformedLog.run((suppressed) => this.log.warn({ router, seq, reason: err.message, suppressed }, 'malformed batch refused'));
      return { ack: { seq, status: AckStatus.MALFORMED, accepted: 0, rejected: 0, message: err.message }, accepted: null };
    }

    // A copy of this seq may still be in flight on another connection of the same router.
    for (let other = seqs.inflight.get(seq); other !== undefined; other = seqs.inflight.get(seq)) await other;
    const split = splitBatch(sections);
    if (seqs.isDone(seq)) {
      metrics.duplicates.inc();
      return { ack: { seq, status: AckStatus.OK, accepted: split.accepted, rejected: split.rejected, message: '' }, accepted: null };
    }
    metrics.linesReceived.inc({ result: 'accepted' }, split.accepted);
    if (split.rejected > 0) metrics.linesReceived.inc({ result: 'rejected' }, split.rejected);
    if (split.apps.length === 0) {
      seqs.settle(seq, true);
      return { ack: { seq, status: AckStatus.OK, accepted: 0, rejected: split.rejected, message: '' }, accepted: null };
    }

    let settled!: () => void;
    seqs.inflight.set(seq, new Promise<void>((resolve) => (settled = resolve)));
    try {
      await this.writeAll(split.apps, split.accepted);
      seqs.settle(seq, true);
      return { ack: { seq, status: AckStatus.OK, accepted: split.accepted, rejected: split.rejected, message: '' }, accepted: split.apps };
    } catch (err) {
      seqs.settle(seq, false);
      metrics.batchesRefused.inc({ reason: 'unavailable' });
      const e = err as NodeJS.ErrnoException & { backend?: string };
      this.failureLog.run((suppressed) => this.log.error({ err: e, backend: e.backend, router, seq, suppressed }, 'backend write failed: batch acknowledged UNAVAILABLE'));
      return { ack: { seq, status: AckStatus.UNAVAILABLE, accepted: 0, rejected: split.rejected, message: `${e.backend ?? 'backend'}: ${e.code ?? e.message}` }, accepted: null };
    } finally {
      seqs.inflight.delete(seq);
      settled();
    }
  }

  private writeAll(apps: AppLines[], lines: number): Promise<void> {
    if (this.backends.length === 1) return this.writeTo(this.backends[0]!, apps, lines);
    return Promise.all(this.backends.map((b) => this.writeTo(b, apps, lines))).then(() => undefined);
  }

  private async writeTo(backend: LogBackend, apps: AppLines[], lines: number): Promise<void> {
    const { metrics } = this;
    const started = performance.now();
    try {
      await backend.write(apps);
    } catch (err) {
      metrics.backendFailures.inc({ backend: backend.name });
      metrics.backendSeconds.observe({ backend: backend.name }, (performance.now() - started) / 1000);
      const tagged = err instanceof Error ? err : new Error(String(err));
      (tagged as Error & { backend?: string }).backend ??= backend.name;
      throw tagged;
    }
    metrics.backendSeconds.observe({ backend: backend.name }, (performance.now() - started) / 1000);
    let bytes = 0;
    for (const a of apps) bytes += a.data.length;
    metrics.backendBatches.inc({ backend: backend.name });
    metrics.backendLines.inc({ backend: backend.name }, lines);
    metrics.backendBytes.inc({ backend: backend.name }, bytes);
  }
}

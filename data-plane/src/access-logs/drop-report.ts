/**
 * Counts lost access-log lines per app (metric) and summarizes them in one warn line per
 * minute at most: which apps lost how many lines, and why.
 */
import type { Logger } from 'pino';
import type { AccessLogMetrics, DropReason } from './metrics.js';

/** What a batch remembers of itself to count its lines by app if it is dropped. */
export interface BatchSummary {
  /** App of each section ('-' for lines of no app). */
  readonly apps: readonly string[];
  /** Lines of each section. */
  readonly lines: readonly number[];
}

/** The summary names this many apps at most; the others are added up as "_other". */
const SUMMARY_APPS = 20;

export class DropReport {
  private byApp = new Map<string, number>();
  private reasons = new Map<DropReason, number>();
  private lines = 0;
  private batches = 0;
  private lastLogAt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly metrics: AccessLogMetrics,
    private readonly log: Logger,
    private readonly intervalMs = 60_000,
  ) {}

  drop(batch: BatchSummary, reason: DropReason): void {
    let total = 0;
    for (let i = 0; i < batch.apps.length; i++) {
      const app = batch.apps[i]!;
      const n = batch.lines[i]!;
      total += n;
      this.metrics.dropped.inc({ app: this.metrics.appLabel(app), reason }, n);
      const key = this.byApp.has(app) || this.byApp.size < SUMMARY_APPS ? app : '_other';
      this.byApp.set(key, (this.byApp.get(key) ?? 0) + n);
    }
    this.lines += total;
    this.batches++;
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + total);
    if (this.timer === null) {
      this.timer = setTimeout(this.report, Math.max(0, this.lastLogAt + this.intervalMs - Date.now()));
      this.timer.unref();
    }
  }

  /** Logs what is pending now (shutdown). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.report();
  }

  private readonly report = (): void => {
    this.timer = null;
    if (this.lines === 0) return;
    this.lastLogAt = Date.now();
    this.log.warn(
      { lines: this.lines, batches: this.batches, byApp: Object.fromEntries(this.byApp), byReason: Object.fromEntries(this.reasons) },
      'access-log lines dropped',
    );
    this.byApp = new Map();
    this.reasons = new Map();
    this.lines = 0;
    this.batches = 0;
  };
}

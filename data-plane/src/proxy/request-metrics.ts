/**
 * The per-request metrics, as cells (hot-metrics.ts): a request adds to numbers in cells
 * looked up once per (app, code, class), and prom-client sees the totals when /metrics is
 * read. The maps are bounded by RouterMetrics.appLabel's budget times the handful of codes.
 */
import { CounterCells, GaugeCells, type CounterCell, type GaugeCell, type HistogramCell } from '../hot-metrics.js';
import type { RouterMetrics } from '../metrics.js';

const CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

function classIndex(status: number): number {
  const c = (status / 100) | 0;
  return c < 1 ? 1 : c > 5 ? 5 : c;
}

/** One per RouterMetrics: two sets of cells would each write their own in-flight values into one gauge. */
const byRegistry = new WeakMap<RouterMetrics, RequestMetrics>();

export class RequestMetrics {
  static of(metrics: RouterMetrics): RequestMetrics {
    let found = byRegistry.get(metrics);
    if (found === undefined) byRegistry.set(metrics, (found = new RequestMetrics(metrics)));
    return found;
  }

  private readonly requests = new Map<string, Map<string, Array<CounterCell | undefined>>>();
  private readonly requestCells: CounterCells<'app' | 'class' | 'code'>;
  private readonly seconds: HistogramCell[];
  private readonly inflightByLabel = new Map<string, GaugeCell>();
  private readonly inflightCells: GaugeCells<'app'>;
  private readonly http1: CounterCell;
  private readonly h2: CounterCell;

  private constructor(readonly metrics: RouterMetrics) {
    this.requestCells = new CounterCells(metrics.requests);
    this.inflightCells = new GaugeCells(metrics.inflight);
    this.seconds = CLASSES.map((c) => metrics.requestSeconds.cell(c));
    const byProtocol = new CounterCells(metrics.requestsByProtocol);
    this.http1 = byProtocol.cell('http/1.1');
    this.h2 = byProtocol.cell('h2');
  }

  /** One answered HTTP request, by the client's protocol. */
  protocol(h2: boolean): void {
    (h2 ? this.h2 : this.http1).n++;
  }

  /** One answered request (`appLabel` from RouterMetrics.appLabel, or '-' when no app). */
  count(appLabel: string, status: number, code: string): void {
    let byCode = this.requests.get(appLabel);
    if (byCode === undefined) this.requests.set(appLabel, (byCode = new Map()));
    let byClass = byCode.get(code);
    if (byClass === undefined) byCode.set(code, (byClass = []));
    const idx = classIndex(status);
    let cell = byClass[idx];
    if (cell === undefined) byClass[idx] = cell = this.requestCells.cell(appLabel, CLASSES[idx]!, code);
    cell.n++;
  }

  /** Time from the request reaching the router to its response headers. */
  observe(status: number, seconds: number): void {
    this.seconds[classIndex(status)]!.observe(seconds);
  }

  /** The app's in-flight count: `n++` when a request is admitted, `n--` when it ends. */
  inflight(appLabel: string): GaugeCell {
    let cell = this.inflightByLabel.get(appLabel);
    if (cell === undefined) this.inflightByLabel.set(appLabel, (cell = this.inflightCells.cell(appLabel)));
    return cell;
  }
}

/**
 * Per-request metrics without prom-client on the request path. A prom-client child's
 * `inc()` or `observe()` re-validates and re-hashes its label set on every call (profiled: 3.6%
 * of a worker's busy time at saturation, for five calls per request). Here a request adds to
 * plain numbers in a cell it already holds, and the cells are written into the registry when
 * it is read (prom-client's `collect` hook), so /metrics and the cluster aggregation see
 * ordinary prom-client metrics.
 *
 * The request histogram is a registry metric of its own (BucketHistogram): prom-client's
 * Histogram has no way to add a count to a bucket in bulk.
 */
import type { Counter, Gauge, Registry } from 'prom-client';

/** One line of a histogram as prom-client's registry reads a metric's `get()`. */
interface HistogramValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/** A counter's child: `n` is what was added since the last scrape. */
export interface CounterCell {
  n: number;
}

/** Counter children by label values, flushed into `counter` whenever it is read. */
export class CounterCells<L extends string> {
  private readonly cells: Array<{ values: string[]; cell: CounterCell }> = [];

  constructor(private readonly counter: Counter<L>) {
    chainCollect(counter, () => this.flush());
  }

  /** Call once per label set and keep the cell: the lookup is the cost this avoids. */
  cell(...values: string[]): CounterCell {
    const cell = { n: 0 };
    this.cells.push({ values, cell });
    return cell;
  }

  private flush(): void {
    for (const { values, cell } of this.cells) {
      if (cell.n === 0) continue;
      this.counter.labels(...(values as never[])).inc(cell.n);
      cell.n = 0;
    }
  }
}

/** A gauge's child: `n` is its current value. */
export interface GaugeCell {
  n: number;
}

export class GaugeCells<L extends string> {
  private readonly cells: Array<{ values: string[]; cell: GaugeCell }> = [];

  constructor(private readonly gauge: Gauge<L>) {
    chainCollect(gauge, () => {
      for (const { values, cell } of this.cells) this.gauge.labels(...(values as never[])).set(cell.n);
    });
  }

  cell(...values: string[]): GaugeCell {
    const cell = { n: 0 };
    this.cells.push({ values, cell });
    return cell;
  }
}

/** Runs `flush` before prom-client reads `metric`, after any collect it already had. */
function chainCollect(metric: Counter<string> | Gauge<string>, flush: () => void): void {
  const target = metric as unknown as { collect?: () => unknown };
  const previous = target.collect;
  target.collect = function collect(this: unknown) {
    const result = previous?.call(this);
    flush();
    return result;
  };
}

/** One label set's buckets (not cumulative), sum and count. */
export class HistogramCell {
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.buckets[i]!++;
        return;
      }
    }
  }
}

/**
 * A histogram with one label, read by prom-client's registry like its own Histogram (same
 * `get()` shape: `_bucket` values with `le`, then `_sum` and `_count`; aggregator sum).
 */
export class BucketHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly cells = new Map<string, HistogramCell>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  cell(labelValue: string): HistogramCell {
    let cell = this.cells.get(labelValue);
    if (cell === undefined) this.cells.set(labelValue, (cell = new HistogramCell(this.bounds)));
    return cell;
  }

  get(): Promise<{ name: string; help: string; type: 'histogram'; values: HistogramValue[]; aggregator: 'sum' }> {
    const values: HistogramValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const [labelValue, cell] of this.cells) {
      if (cell.count === 0) continue;
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += cell.buckets[i]!;
        values.push({ metricName: bucketName, labels: { le: this.bounds[i]!, [this.labelName]: labelValue }, value: acc });
      }
      values.push({ metricName: bucketName, labels: { le: '+Inf', [this.labelName]: labelValue }, value: cell.count });
      values.push({ metricName: `${this.name}_sum`, labels: { [this.labelName]: labelValue }, value: cell.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.labelName]: labelValue }, value: cell.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** Zeroes the cells where they are: their holders keep observing into them. */
  reset(): void {
    for (const cell of this.cells.values()) {
      cell.buckets.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}

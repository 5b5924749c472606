/**
 * A histogram as bars of counts per bucket; the buckets are categories of equal width on the
 * x axis, so narrow buckets near 0 ms and wide ones in the tail read side by side.
 */
import { barChart } from './bar-chart.js';
import { formatNumber } from './svg.js';

export interface HistogramSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  values: number[];
  /** Increasing bucket bounds: [e0, e1), [e1, e2)…, then ≥ the last. Values below e0 go in the first. */
  edges: number[];
  unit?: string;
}

export function bucketCounts(values: number[], edges: number[]): Array<{ label: string; count: number }> {
  const buckets = edges.map((lo, i) => {
    const hi = edges[i + 1];
    return { label: hi === undefined ? `≥ ${formatNumber(lo)}` : `${formatNumber(lo)}–${formatNumber(hi)}`, count: 0 };
  });
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    let i = edges.length - 1;
    while (i > 0 && v < edges[i]!) i--;
    buckets[i]!.count++;
  }
  return buckets;
}

export function histogram(spec: HistogramSpec): string {
  const buckets = bucketCounts(spec.values, spec.edges);
  return barChart({
    title: spec.title,
    ...(spec.subtitle !== undefined ? { subtitle: spec.subtitle } : {}),
    xLabel: spec.xLabel,
    yLabel: spec.yLabel,
    series: ['count'],
    groups: buckets.map((b) => ({ label: b.label, values: [{ value: b.count }] })),
    valueLabels: true,
    ...(spec.unit !== undefined ? { unit: spec.unit } : {}),
  });
}

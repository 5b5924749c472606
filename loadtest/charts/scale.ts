/**
 * Value → pixel scales with labelled ticks: linear from 0 (bars must start at 0 to compare),
 * or logarithmic by decades for latencies that span 0.1 ms to seconds.
 */
export interface Scale {
  readonly log: boolean;
  readonly min: number;
  readonly max: number;
  readonly ticks: number[];
  /** Pixel y of a value, clamped to the axis (a log axis shows ≤ 0 at its bottom). */
  y(value: number): number;
}

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
}

export function linearScale(maxValue: number, bottom: number, top: number, tickCount = 5): Scale {
  const target = Number.isFinite(maxValue) && maxValue > 0 ? maxValue : 1;
  const step = niceStep(target, tickCount);
  const max = Math.ceil(target / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= max + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return {
    log: false,
    min: 0,
    max,
    ticks,
    y: (v) => bottom - (Math.min(Math.max(v, 0), max) / max) * (bottom - top),
  };
}

export function logScale(minPositive: number, maxValue: number, bottom: number, top: number): Scale {
  const lo = 10 ** Math.floor(Math.log10(Number.isFinite(minPositive) && minPositive > 0 ? minPositive : 0.1));
  let hi = 10 ** Math.ceil(Math.log10(Number.isFinite(maxValue) && maxValue > lo ? maxValue : lo * 10));
  if (hi <= lo) hi = lo * 10;
  const decades = Math.round(Math.log10(hi / lo));
  const ticks: number[] = [];
  for (let d = 0; d <= decades; d++) {
    const base = lo * 10 ** d;
    ticks.push(Number(base.toPrecision(6)));
    // Few decades: 2 and 5 in between, or the axis has two labels.
    if (decades <= 2 && d < decades) ticks.push(Number((2 * base).toPrecision(6)), Number((5 * base).toPrecision(6)));
  }
  const l0 = Math.log10(lo);
  const l1 = Math.log10(hi);
  return {
    log: true,
    min: lo,
    max: hi,
    ticks,
    y: (v) => {
      const c = Math.min(Math.max(v > 0 ? Math.log10(v) : l0, l0), l1);
      return bottom - ((c - l0) / (l1 - l0)) * (bottom - top);
    },
  };
}

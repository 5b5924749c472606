/**
 * Grouped bars, as in Scalingo's router article: one group per x category (a rate), one bar
 * per series (router, direct, nginx) showing the mean, and an optional marker per bar (the
 * p99) drawn as a whisker from the bar's top with a cap. Linear or log y axis with labelled
 * ticks, a legend, a title and axis labels. Every bar is a `rect.bar` with a tooltip.
 */
import { el, esc, formatNumber, seriesColour, svgDocument, text } from './svg.js';
import { linearScale, logScale, type Scale } from './scale.js';

export interface BarValue {
  value: number;
  /** Drawn as a cap above (or below) the bar's top: the p99 for latency bars. */
  marker?: number;
}

export interface BarGroup {
  label: string;
  /** One per series, in the series' order; null where that series was not measured. */
  values: Array<BarValue | null>;
}

export interface BarChartSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: string[];
  groups: BarGroup[];
  log?: boolean;
  /** Legend text of the markers, e.g. "p99". */
  markerLabel?: string;
  /** Print each bar's value above it (counts, rates: not latencies, whose markers say enough). */
  valueLabels?: boolean;
  /** Unit for tooltips, e.g. "ms". */
  unit?: string;
}

const H = 420;
const TOP = 84;
const BOTTOM = H - 58;
const LEFT = 72;
const RIGHT = 24;
const CHAR = 6.6;

export function barChart(spec: BarChartSpec): string {
  const n = Math.max(1, spec.series.length);
  const barW = n <= 3 ? 26 : n <= 5 ? 18 : 12;
  const longest = Math.max(0, ...spec.groups.map((g) => g.label.length));
  const groupW = Math.max(n * barW + 28, longest * CHAR + 12);
  const legendW = spec.series.reduce((w, s) => w + 30 + s.length * CHAR, 0) + (spec.markerLabel ? 40 + spec.markerLabel.length * CHAR : 0);
  const width = Math.max(560, LEFT + spec.groups.length * groupW + RIGHT, LEFT + legendW + RIGHT, LEFT + spec.title.length * 9.8 + RIGHT, LEFT + (spec.subtitle?.length ?? 0) * 6.2 + RIGHT);

  const present = spec.groups.flatMap((g) => g.values.filter((v): v is BarValue => v !== null && Number.isFinite(v.value)));
  const all = present.flatMap((v) => (v.marker !== undefined && Number.isFinite(v.marker) ? [v.value, v.marker] : [v.value]));
  const max = Math.max(0, ...all);
  const scale: Scale = spec.log ? logScale(Math.min(...all.filter((v) => v > 0)), max, BOTTOM, TOP) : linearScale(max * 1.08, BOTTOM, TOP);

  const body: string[] = [];
  body.push(text(LEFT, 24, spec.title, { 'font-size': 16, 'font-weight': 'bold', class: 'title' }));
  if (spec.subtitle) body.push(text(LEFT, 42, spec.subtitle, { 'font-size': 11, fill: '#555', class: 'subtitle' }));
  body.push(legend(spec, LEFT, 62));

  // Grid and y ticks.
  for (const t of scale.ticks) {
    const y = scale.y(t);
    body.push(el('line', { x1: LEFT, x2: width - RIGHT, y1: y, y2: y, stroke: '#e3e3e3', 'stroke-width': 1 }));
    body.push(text(LEFT - 6, y + 4, formatNumber(t), { 'text-anchor': 'end', fill: '#333', class: 'tick' }));
  }
  body.push(el('line', { x1: LEFT, x2: LEFT, y1: TOP, y2: BOTTOM, stroke: '#333' }));
  body.push(el('line', { x1: LEFT, x2: width - RIGHT, y1: BOTTOM, y2: BOTTOM, stroke: '#333' }));
  const midY = (TOP + BOTTOM) / 2;
  body.push(text(18, midY, `${spec.yLabel}${spec.log ? ' (log scale)' : ''}`, { transform: `rotate(-90 18 ${midY})`, 'text-anchor': 'middle', class: 'axis-label' }));
  const plotW = width - LEFT - RIGHT;
  body.push(text(LEFT + plotW / 2, H - 14, spec.xLabel, { 'text-anchor': 'middle', class: 'axis-label' }));

  const slot = plotW / Math.max(1, spec.groups.length);
  spec.groups.forEach((g, gi) => {
    const cx = LEFT + slot * (gi + 0.5);
    const x0 = cx - (n * barW) / 2;
    body.push(text(cx, BOTTOM + 18, g.label, { 'text-anchor': 'middle', class: 'group-label' }));
    g.values.forEach((v, si) => {
      if (v === null || !Number.isFinite(v.value)) return;
      const name = spec.series[si] ?? `series ${si + 1}`;
      const x = x0 + si * barW + 1;
      const w = barW - 2;
      const yTop = scale.y(v.value);
      const unit = spec.unit ? ` ${spec.unit}` : '';
      const tip = `${name}, ${g.label}: ${formatNumber(v.value)}${unit}${v.marker !== undefined ? `; ${spec.markerLabel ?? 'marker'} ${formatNumber(v.marker)}${unit}` : ''}`;
      body.push(el('rect', { class: 'bar', 'data-series': name, 'data-group': g.label, x, y: yTop, width: w, height: Math.max(0, BOTTOM - yTop), fill: seriesColour(name, si) }, el('title', {}, esc(tip))));
      let labelY = yTop;
      if (v.marker !== undefined && Number.isFinite(v.marker)) {
        const ym = scale.y(v.marker);
        body.push(el('line', { class: 'whisker', x1: x + w / 2, x2: x + w / 2, y1: yTop, y2: ym, stroke: '#222', 'stroke-width': 1 }));
        body.push(el('line', { class: 'marker', x1: x - 2, x2: x + w + 2, y1: ym, y2: ym, stroke: '#222', 'stroke-width': 2 }));
        labelY = Math.min(labelY, ym);
      }
      if (spec.valueLabels) body.push(text(x + w / 2, labelY - 4, formatNumber(v.value), { 'text-anchor': 'middle', 'font-size': 10, fill: '#222', class: 'value' }));
    });
  });
  return svgDocument(width, H, spec.title, body);
}

function legend(spec: BarChartSpec, x0: number, y: number): string {
  const parts: string[] = [];
  let x = x0;
  spec.series.forEach((s, i) => {
    parts.push(el('rect', { x, y: y - 9, width: 12, height: 12, fill: seriesColour(s, i) }));
    parts.push(text(x + 16, y + 1, s));
    x += 30 + s.length * CHAR;
  });
  if (spec.markerLabel) {
    parts.push(el('line', { x1: x, x2: x + 14, y1: y - 3, y2: y - 3, stroke: '#222', 'stroke-width': 2 }));
    parts.push(text(x + 18, y + 1, spec.markerLabel));
  }
  return el('g', { class: 'legend' }, parts.join(''));
}

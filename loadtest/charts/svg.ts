/**
 * Dependency-free SVG: escaping, elements, the document frame every chart shares. Text from
 * reports (target names, labels) goes through `esc`, so a name with `<` or `&` cannot break
 * the file.
 */
export type Attrs = Record<string, string | number | undefined>;

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** Coordinates to 0.1 px: enough for a screen, and keeps the files small. */
export function px(n: number): string {
  return String(Math.round(n * 10) / 10);
}

export function el(name: string, attrs: Attrs, children?: string): string {
  let out = `<${name}`;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined) continue;
    out += ` ${k}="${esc(typeof v === 'number' ? px(v) : v)}"`;
  }
  return children === undefined ? `${out}/>` : `${out}>${children}</${name}>`;
}

export function text(x: number, y: number, content: string, attrs: Attrs = {}): string {
  return el('text', { x, y, ...attrs }, esc(content));
}

export const FONT = 'system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif';

/** Colour-blind-safe (Okabe–Ito). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

/** The benches' targets keep their colour from chart to chart, whichever of them ran. */
const TARGET_COLOUR: Record<string, string> = { direct: PALETTE[0]!, nginx: PALETTE[1]!, router: PALETTE[2]!, 'node floor': PALETTE[3]! };

export function seriesColour(name: string, index: number): string {
  return TARGET_COLOUR[name] ?? PALETTE[index % PALETTE.length]!;
}

export function svgDocument(width: number, height: number, title: string, body: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${px(width)} ${px(height)}" width="${px(width)}" height="${px(height)}" font-family="${esc(FONT)}" font-size="12" role="img">`,
    el('title', {}, esc(title)),
    el('rect', { x: 0, y: 0, width, height, fill: '#ffffff' }),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Short tick and value labels: 0.25, 12.5, 850, 12k, 1.5M. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e4) return `${trim(v / 1e3)}k`;
  return trim(v);
}

function trim(v: number): string {
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return String(Number(v.toFixed(digits)));
}

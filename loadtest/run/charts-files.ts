/**
 * Draws the charts of one report JSON: `<report>-<slug>.svg` next to it, and the Charts
 * section at the end of `<report>.md` when that exists.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chartsFor, type BenchKind } from '../charts/report-charts.js';
import { chartsSection, withChartsSection, type WrittenChart } from './markdown.js';

export function kindOf(jsonPath: string): BenchKind {
  const base = path.basename(jsonPath);
  for (const k of ['router', 'tls', 'logs'] as const) if (base.startsWith(`${k}-`) && base.endsWith('.json')) return k;
  throw new Error(`${jsonPath}: not a router-, tls- or logs- report JSON`);
}

export interface DrawnReport {
  /** The Markdown report's file name, when there is one. */
  report: string | undefined;
  charts: WrittenChart[];
}

export async function drawCharts(jsonPath: string, kind: BenchKind = kindOf(jsonPath)): Promise<DrawnReport> {
  const json: unknown = JSON.parse(await readFile(jsonPath, 'utf8'));
  const set = chartsFor(kind, json);
  const dir = path.dirname(jsonPath);
  const stem = path.basename(jsonPath, '.json');
  const charts: WrittenChart[] = [];
  for (const c of set.charts) {
    const file = `${stem}-${c.slug}.svg`;
    await writeFile(path.join(dir, file), c.svg);
    charts.push({ file, title: c.title });
  }
  const mdPath = path.join(dir, `${stem}.md`);
  let md: string;
  try {
    md = await readFile(mdPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { report: undefined, charts };
    throw err;
  }
  await writeFile(mdPath, withChartsSection(md, chartsSection(charts, set)));
  return { report: `${stem}.md`, charts };
}

/**
 * The Markdown `npm run loadtest` adds: a Charts section at the end of each bench's report
 * (replaced, not repeated, when the charts are drawn again), the index report of a run, and
 * the "latest reports" list in docs/BENCHMARKS.md.
 */
import type { ChartSet } from '../charts/report-charts.js';

export const CHARTS_MARKER = '<!-- loadtest:charts -->';
export const LATEST_START = '<!-- loadtest:latest:start -->';
export const LATEST_END = '<!-- loadtest:latest:end -->';

export interface WrittenChart {
  /** File name, in the same directory as the report. */
  file: string;
  title: string;
}

/** Markdown link targets: spaces and brackets would end the link. */
export function linkTarget(file: string): string {
  return file.replace(/[ ()<>]/g, (c) => encodeURIComponent(c));
}

/** Image alt text and link text: brackets would end it. */
export function linkText(s: string): string {
  return s.replace(/[[\]\\]/g, (c) => `\\${c}`);
}

export function chartsSection(charts: WrittenChart[], set: ChartSet): string {
  const s: string[] = [CHARTS_MARKER, '## Charts', ''];
  if (charts.length === 0) s.push('No chart for the parts this run measured.', '');
  for (const c of charts) s.push(`![${linkText(c.title)}](${linkTarget(c.file)})`, '');
  for (const block of set.markdown) s.push(block, '');
  return s.join('\n');
}

export function withChartsSection(report: string, section: string): string {
  const at = report.indexOf(CHARTS_MARKER);
  const head = (at < 0 ? report : report.slice(0, at)).replace(/\s*$/, '');
  return `${head}\n\n${section}`;
}

export interface IndexEntry {
  experiment: string;
  what: string;
  command: string;
  status: 'ok' | 'failed';
  /** Why it failed: exit code or signal, or no report found. */
  detail?: string;
  seconds: number;
  /** File names relative to the index (same directory). */
  report?: string;
  charts: WrittenChart[];
}

export function indexReport(startedAt: string, command: string, machine: string, entries: IndexEntry[]): string {
  const s: string[] = [`# Load test, ${startedAt}`, '', '```sh', command, '```', '', `- machine: ${machine}`];
  s.push('- every experiment runs on this machine, load generator included: compare several runs before trusting a figure (docs/BENCHMARKS.md).', '');
  s.push('| experiment | what | status | time | report |', '|---|---|---|---:|---|');
  for (const e of entries) {
    const report = e.report === undefined ? '—' : `[${linkText(e.report)}](${linkTarget(e.report)})`;
    s.push(`| ${e.experiment} | ${e.what} | ${e.status === 'ok' ? 'ok' : `**failed** (${e.detail ?? '?'})`} | ${Math.round(e.seconds)} s | ${report} |`);
  }
  s.push('');
  for (const e of entries) {
    if (e.charts.length === 0) continue;
    s.push(`## ${e.experiment}`, '', `\`${e.command}\``, '');
    for (const c of e.charts) s.push(`![${linkText(c.title)}](${linkTarget(c.file)})`, '');
  }
  return s.join('\n');
}

/**
 * Replaces the lines of the given experiments in the list between the markers, keeping the
 * others (the latest http report stays when only logs ran). Without the markers, the
 * document is returned as it was: the list is not put anywhere unasked.
 */
export function updateLatest(doc: string, lines: Record<string, string>): string {
  const start = doc.indexOf(LATEST_START);
  const end = doc.indexOf(LATEST_END);
  if (start < 0 || end < start) return doc;
  const inner = doc.slice(start + LATEST_START.length, end);
  const current = new Map<string, string>();
  for (const line of inner.split('\n')) {
    const m = /^- \*\*([\w-]+)\*\*/.exec(line);
    if (m !== null) current.set(m[1]!, line);
  }
  for (const [name, line] of Object.entries(lines)) current.set(name, `- **${name}**: ${line}`);
  const order = ['index', 'http', 'https', 'reload', 'websocket', 'logs'];
  const names = [...current.keys()].sort((a, b) => ((order.indexOf(a) + 99) % 99) - ((order.indexOf(b) + 99) % 99));
  return `${doc.slice(0, start)}${LATEST_START}\n${names.map((n) => current.get(n)!).join('\n')}\n${doc.slice(end)}`;
}

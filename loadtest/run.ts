/**
 * One command per Scalingo experiment, on this machine:
 *
 *   npm run loadtest -- http|https|reload|websocket|logs|all [--quick] [options for the bench]
 *   npm run loadtest -- charts loadtest/reports/<report>.json...
 *
 * Runs the existing benches as child processes (their progress on stderr goes through, with
 * an "experiment k of n" line from here), then draws SVG charts from the JSON each wrote,
 * appends them to its Markdown report, and writes an index, loadtest/reports/loadtest-<time>.md.
 * A full run (not --quick, unless --update-docs) also rewrites the "latest reports" list in
 * docs/BENCHMARKS.md. See loadtest/README.md.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourcePath } from '../proto/source-path.js';
import { mmss } from './router-bench/progress.js';
import { drawCharts } from './run/charts-files.js';
import { runBench, type BenchOutcome } from './run/bench-child.js';
import { parseRunArgs, USAGE, UsageError, type Experiment } from './run/experiments.js';
import { indexReport, linkTarget, updateLatest, type IndexEntry } from './run/markdown.js';

const REPORTS = sourcePath(import.meta.url, 'reports');
const BENCHMARKS_DOC = sourcePath(import.meta.url, '..', 'docs', 'BENCHMARKS.md');
const DIST = path.dirname(fileURLToPath(import.meta.url));

function say(text: string): void {
  process.stderr.write(`\n[loadtest] ${text}\n`);
}

async function chartsOnly(files: string[]): Promise<void> {
  if (files.length === 0) throw new UsageError(USAGE);
  for (const f of files) {
    const drawn = await drawCharts(path.resolve(f));
    say(`${f}: ${drawn.charts.map((c) => c.file).join(', ') || 'no chart'}${drawn.report !== undefined ? `; Charts section in ${drawn.report}` : ''}`);
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'charts') {
    await chartsOnly(argv.slice(1));
    return 0;
  }
  const o = parseRunArgs(argv);
  const started = performance.now();
  const startedAt = new Date();
  const planned = (e: Experiment): number => e.seconds[o.quick ? 0 : 1];
  let interrupted = false;
  let running: number | null = null;
  // Ctrl-C reaches the bench too (same process group) and it stops its children itself:
  // only a SIGTERM sent to this process alone is handed on.
  process.on('SIGINT', () => {
    interrupted = true;
  });
  process.on('SIGTERM', () => {
    interrupted = true;
    if (running !== null) process.kill(running, 'SIGINT');
  });

  await mkdir(REPORTS, { recursive: true });
  const entries: IndexEntry[] = [];
  for (const [k, e] of o.experiments.entries()) {
    if (interrupted) break;
    const left = o.experiments.slice(k).reduce((s, x) => s + planned(x), 0);
    const command = `node dist/loadtest/${e.script} ${[...e.args, ...o.passThrough].join(' ')}`.trim();
    say(`experiment ${k + 1} of ${o.experiments.length}: ${e.name} — ${e.what} (${command}); ${mmss((performance.now() - started) / 1000)} elapsed, ~${mmss(left)} left in all`);
    const t0 = performance.now();
    const bench = await runBench(e, DIST, REPORTS, o.passThrough);
    running = bench.pid;
    const outcome: BenchOutcome = await bench.done;
    running = null;
    const seconds = (performance.now() - t0) / 1000;
    const entry: IndexEntry = { experiment: e.name, what: e.what, command, status: 'ok', seconds, charts: [] };
    const json = outcome.jsonFiles.at(-1);
    if (outcome.exitCode !== 0 || json === undefined) {
      entry.status = 'failed';
      entry.detail = outcome.exitCode !== 0 ? (outcome.signal !== null ? `killed by ${outcome.signal}` : `exit code ${outcome.exitCode}`) : 'no report written';
    }
    if (json !== undefined) {
      try {
        const drawn = await drawCharts(json, e.kind);
        if (drawn.report !== undefined) entry.report = drawn.report;
        entry.charts = drawn.charts;
        say(`${e.name}: ${drawn.report ?? path.basename(json)} with ${drawn.charts.length} chart${drawn.charts.length === 1 ? '' : 's'}`);
      } catch (err) {
        entry.status = 'failed';
        entry.detail = `charts: ${(err as Error).message}`;
      }
    }
    if (entry.status === 'failed') say(`${e.name} failed: ${entry.detail}`);
    entries.push(entry);
  }

  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const indexFile = `loadtest-${stamp}.md`;
  const cpus = os.cpus();
  const machine = `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`;
  await writeFile(path.join(REPORTS, indexFile), indexReport(startedAt.toISOString(), `npm run loadtest -- ${argv.join(' ')}`, machine, entries));
  const files = [indexFile, ...entries.flatMap((x) => [...(x.report !== undefined ? [x.report, x.report.replace(/\.md$/, '.json')] : []), ...x.charts.map((c) => c.file)])];
  say(`index: loadtest/reports/${indexFile}; written:\n${files.map((f) => `  loadtest/reports/${f}`).join('\n')}`);

  const failed = entries.some((x) => x.status === 'failed') || interrupted;
  if (o.updateDocs && !failed) {
    const date = startedAt.toISOString().slice(0, 10);
    const link = (f: string): string => `[${f}](../loadtest/reports/${linkTarget(f)})`;
    const lines: Record<string, string> = {};
    if (o.experiments.length > 1) lines['index'] = `${link(indexFile)} (${date}, all experiments)`;
    for (const x of entries) if (x.report !== undefined) lines[x.experiment] = `${link(x.report)} (${date}${o.quick ? ', --quick' : ''})`;
    const doc = await readFile(BENCHMARKS_DOC, 'utf8');
    const next = updateLatest(doc, lines);
    if (next !== doc) {
      await writeFile(BENCHMARKS_DOC, next);
      say(`docs/BENCHMARKS.md lists these reports; to publish them: git add -f ${files.map((f) => `loadtest/reports/${f}`).join(' ')} docs/BENCHMARKS.md`);
    }
  }
  if (interrupted) return 130;
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof UsageError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);

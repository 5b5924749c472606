/**
 * `npm run loadtest -- <experiment>`: Scalingo's experiments mapped onto the benches that
 * already measure them, and the command line.
 */
import type { BenchKind } from '../charts/report-charts.js';

export const EXPERIMENT_NAMES = ['http', 'https', 'reload', 'websocket', 'logs'] as const;
export type ExperimentName = (typeof EXPERIMENT_NAMES)[number];

export interface Experiment {
  name: ExperimentName;
  what: string;
  /** Compiled script under dist/loadtest/. */
  script: string;
  args: string[];
  /** Its reports are `<kind>-<time>.md/.json`. */
  kind: BenchKind;
  /** Rough length, seconds, for the time left: [--quick, full]. */
  seconds: [number, number];
}

export const EXPERIMENTS: Record<ExperimentName, Experiment> = {
  http: { name: 'http', what: 'router vs direct vs nginx at constant rates, then maximum throughput', script: 'router-bench.js', args: ['--only', 'http,throughput'], kind: 'router', seconds: [90, 450] },
  https: { name: 'https', what: 'TLS handshakes/s and HTTPS rates, router vs nginx', script: 'tls-bench.js', args: [], kind: 'tls', seconds: [240, 1100] },
  reload: { name: 'reload', what: 'topology changes under load (router scale events, nginx reloads), then propagation', script: 'router-bench.js', args: ['--only', 'reload,propagation'], kind: 'router', seconds: [50, 170] },
  websocket: { name: 'websocket', what: 'WebSockets through scale events: none may drop', script: 'router-bench.js', args: ['--only', 'websocket'], kind: 'router', seconds: [30, 45] },
  logs: { name: 'logs', what: 'log-shipper at Scalingo\'s rates: lines remaining, CPU', script: 'logs-bench.js', args: [], kind: 'logs', seconds: [100, 850] },
};

export interface RunOptions {
  experiments: Experiment[];
  quick: boolean;
  /** Given to each bench after its own arguments. */
  passThrough: string[];
  /** Rewrite the "latest reports" list in docs/BENCHMARKS.md (full runs only, unless asked). */
  updateDocs: boolean;
}

export const USAGE = `usage: npm run loadtest -- <${EXPERIMENT_NAMES.join('|')}|all> [--quick] [--no-docs|--update-docs] [options for the bench]
       npm run loadtest -- charts <report.json>...   (draw the charts of reports already written)
experiments:
${EXPERIMENT_NAMES.map((n) => `  ${n.padEnd(10)} ${EXPERIMENTS[n].what} (${EXPERIMENTS[n].script.replace('.js', '')}${EXPERIMENTS[n].args.length > 0 ? ` ${EXPERIMENTS[n].args.join(' ')}` : ''})`).join('\n')}
  all        each of them in turn (only --quick passes through: the benches' options differ)`;

export class UsageError extends Error {
  readonly code = 'LOADTEST_USAGE';
}

export function parseRunArgs(argv: string[]): RunOptions {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') throw new UsageError(USAGE);
  const names: ExperimentName[] = first === 'all' ? [...EXPERIMENT_NAMES] : (EXPERIMENT_NAMES as readonly string[]).includes(first) ? [first as ExperimentName] : [];
  if (names.length === 0) throw new UsageError(`unknown experiment ${JSON.stringify(first)}\n${USAGE}`);
  const quick = rest.includes('--quick');
  let docs: boolean | null = null;
  const passThrough: string[] = [];
  for (const a of rest) {
    if (a === '--no-docs') docs = false;
    else if (a === '--update-docs') docs = true;
    else passThrough.push(a);
  }
  // The experiment picks the parts: a second --only would silently measure something else.
  if (passThrough.includes('--only')) throw new UsageError(`--only is set by the experiment; run the bench itself (npm run bench:router -- --only …) for other parts\n${USAGE}`);
  if (first === 'all' && passThrough.some((a) => a !== '--quick')) throw new UsageError(`with "all", only --quick is passed to the benches (their other options differ); run one experiment for ${passThrough.filter((a) => a !== '--quick').join(' ')}\n${USAGE}`);
  return { experiments: names.map((n) => EXPERIMENTS[n]), quick, passThrough, updateDocs: docs ?? !quick };
}

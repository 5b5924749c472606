/**
 * From the JSON a bench wrote to the charts (and the extra Markdown) that go with its report.
 * Each chart is drawn only when its part ran; a report from before a field existed (the
 * propagation samples) gets a note instead of a chart.
 */
import type { Results } from '../router-bench/report.js';
import type { TlsResults } from '../tls-bench/report.js';
import { barChart, type BarGroup } from './bar-chart.js';
import { histogram } from './histogram.js';
import { formatNumber } from './svg.js';

export type BenchKind = 'router' | 'tls' | 'logs';

export interface Chart {
  /** File name part: `<report>-<slug>.svg`. */
  slug: string;
  title: string;
  svg: string;
}

export interface ChartSet {
  charts: Chart[];
  /** Tables and notes for the Charts section, after the images: one Markdown block each. */
  markdown: string[];
}

interface LatencyRow {
  target: string;
  rate: number;
  latency: { mean: number; p99: number };
}

/** One group per rate, one bar per series: mean with the p99 as marker. */
export function latencyGroups(rows: LatencyRow[], series: string[]): BarGroup[] {
  const rates = [...new Set(rows.map((r) => r.rate))].sort((a, b) => a - b);
  return rates.map((rate) => ({
    label: String(rate),
    values: series.map((s) => {
      const r = rows.find((x) => x.rate === rate && x.target === s);
      return r === undefined ? null : { value: finite(r.latency.mean), marker: finite(r.latency.p99) };
    }),
  }));
}

/** JSON turns NaN into null. */
function finite(x: number | null | undefined): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : NaN;
}

const ORDER = ['direct', 'nginx', 'node floor', 'router'];
const ordered = (names: string[]): string[] => [...new Set(names)].sort((a, b) => (ORDER.indexOf(a) + 99) % 99 - (ORDER.indexOf(b) + 99) % 99);

/** Propagation buckets in ms: fine below 10 ms (the aim), coarse above. */
export const PROPAGATION_EDGES = [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 50, 100];

export function routerCharts(r: Partial<Results>): ChartSet {
  const charts: Chart[] = [];
  const markdown: string[] = [];
  if (r.rates !== undefined && r.rates.length > 0) {
    const series = ordered(r.rates.map((x) => x.target));
    const title = 'Latency at constant rates: mean (bars) and p99';
    charts.push({ slug: 'http-latency', title, svg: barChart({
      title, subtitle: 'from each request\'s scheduled send time; same backends behind every target', xLabel: 'requests per second', yLabel: 'latency, ms',
      series, groups: latencyGroups(r.rates, series), log: true, markerLabel: 'p99', unit: 'ms',
    }) });
  }
  if (r.throughput !== undefined) {
    const targets = ordered(Object.keys(r.throughput.median));
    const title = 'Maximum throughput, closed loop (median of the rounds)';
    charts.push({ slug: 'throughput', title, svg: barChart({
      title, subtitle: `${r.throughput.rounds[0]?.connections ?? '?'} keep-alive connections`, xLabel: 'target', yLabel: 'requests per second',
      series: ['median req/s'], groups: targets.map((t) => ({ label: t, values: [{ value: finite(r.throughput!.median[t]) }] })), valueLabels: true,
    }) });
  }
  if (r.topology !== undefined && r.topology.length > 0) {
    const series = ordered(r.topology.map((t) => t.target));
    const periods = [...new Set(r.topology.map((t) => t.everyMs))].sort((a, b) => b - a);
    const title = 'Latency under topology changes: mean (bars) and p99';
    charts.push({ slug: 'reload-latency', title, svg: barChart({
      title, subtitle: `${r.topology[0]?.run.rate ?? '?'} req/s; router: scale events, nginx: new upstream + reload`, xLabel: 'one change every', yLabel: 'latency, ms',
      series, log: true, markerLabel: 'p99', unit: 'ms',
      groups: periods.map((every) => ({
        label: `${every / 1000} s`,
        values: series.map((s) => {
          const t = r.topology!.find((x) => x.everyMs === every && x.target === s);
          return t === undefined ? null : { value: finite(t.run.latency.mean), marker: finite(t.run.latency.p99) };
        }),
      })),
    }) });
  }
  if (r.propagation !== undefined) {
    const p = r.propagation;
    if (Array.isArray(p.allMs)) {
      const title = `Propagation of ${p.changes} topology changes`;
      charts.push({ slug: 'propagation', title, svg: histogram({
        title, subtitle: `control plane's 200 → every poller answered by the new container; p50 ${formatNumber(finite(p.all.p50))} ms, p99 ${formatNumber(finite(p.all.p99))} ms, ${p.notPropagated} not propagated in 2 s`,
        xLabel: 'ms', yLabel: 'changes', values: p.allMs, edges: PROPAGATION_EDGES, unit: 'changes',
      }) });
    } else {
      markdown.push('No propagation histogram: this report predates the per-change samples (`allMs`) in the JSON.');
    }
  }
  if (r.websocket !== undefined) {
    const w = r.websocket;
    markdown.push(`WebSockets (no chart: counts): ${w.opened} of ${w.sockets} opened, ${w.scaleEvents} scale events, **${w.dropped} dropped**, ${w.echoedAtEnd} echoing at the end.`);
  }
  return { charts, markdown };
}

const KEY: Record<string, string> = { ec: 'ECDSA', rsa: 'RSA' };

export function tlsCharts(r: Partial<TlsResults>): ChartSet {
  const charts: Chart[] = [];
  const t = r.rateTargets;
  if (r.rates !== undefined && r.rates.length > 0 && t !== undefined) {
    const roles: Array<[string, string]> = [[t.https, 'router keep-alive'], [t.httpsNew, 'router new connection'], [t.nginxHttps, 'nginx keep-alive'], [t.nginxHttpsNew, 'nginx new connection']];
    // Since h2load drives the new connections their rows are apart, and their latency starts after the handshake.
    const h2load = r.newConnections !== undefined;
    const rows = [...r.rates, ...(r.newConnections ?? [])].flatMap((x) => roles.filter(([target]) => target === x.target).map(([, label]) => ({ ...x, target: label })));
    const series = roles.map(([, label]) => label);
    const title = 'HTTPS at constant rates: mean (bars) and p99';
    charts.push({ slug: 'https-latency', title, svg: barChart({
      title, subtitle: h2load ? 'new connection (h2load): a full handshake per request, latency from the request sent after it' : 'new connection: a full handshake per request, no session resumption', xLabel: 'requests per second', yLabel: 'latency, ms',
      series, groups: latencyGroups(rows, series), log: true, markerLabel: 'p99', unit: 'ms',
    }) });
  }
  const ratios = r.handshakes?.ratios ?? [];
  if (ratios.length > 0) {
    const title = 'Full TLS handshakes per second, warm (median of the rounds)';
    charts.push({ slug: 'handshakes', title, svg: barChart({
      title, subtitle: 'a new connection, SNI, chain verified, no session offered; client on the same cores', xLabel: 'certificate key, TLS version', yLabel: 'handshakes per second',
      series: ['router', 'nginx'], valueLabels: true, unit: 'handshakes/s',
      groups: ratios.map((x) => ({ label: `${KEY[x.keyType] ?? x.keyType}, TLS ${x.version.replace('TLSv', '')}`, values: [{ value: finite(x.router) }, { value: finite(x.nginx) }] })),
    }) });
  }
  return { charts, markdown: [] };
}

/** What logs-bench writes per run (its RateResult). */
export interface LogRun {
  apps: number;
  rate: number;
  seconds: number;
  remaining: number;
  lost: number;
  cpuCores: number;
  senderCores: number;
  peakRssMiB: number;
}

export interface LogsJson {
  rates?: LogRun[];
  search?: LogRun[][];
}

const BATCH_MB = (64 * 1024) / 1e6;

export function logsCharts(r: LogsJson): ChartSet {
  const charts: Chart[] = [];
  const markdown: string[] = [];
  const runs = r.rates ?? [];
  if (runs.length > 0) {
    const label = (x: LogRun): string => String(x.rate);
    const title = 'Log-shipper: lines not yet written 1 s after the end';
    charts.push({ slug: 'logs-remaining', title, svg: barChart({
      title, subtitle: `${runs[0]!.apps} apps, 64 KB batches for ${runs[0]!.seconds} s each, SIGHUP reopens during the run`, xLabel: 'batches per second', yLabel: 'lines remaining',
      series: ['remaining lines'], groups: runs.map((x) => ({ label: label(x), values: [{ value: finite(x.remaining) }] })), valueLabels: true, unit: 'lines',
    }) });
    const cpuTitle = 'Log-shipper CPU per rate';
    charts.push({ slug: 'logs-cpu', title: cpuTitle, svg: barChart({
      title: cpuTitle, subtitle: 'the sender runs on the same cores', xLabel: 'batches per second', yLabel: 'CPU, cores',
      series: ['shipper', 'sender'], groups: runs.map((x) => ({ label: label(x), values: [{ value: finite(x.cpuCores) }, { value: finite(x.senderCores) }] })), valueLabels: true, unit: 'cores',
    }) });
  }
  const all = [...runs, ...(r.search ?? []).flat()];
  if (all.length > 0) {
    const table = ['| apps | batches/s | MB/s | lines remaining | lost | shipper CPU (cores) | peak RSS MiB |', '|---:|---:|---:|---:|---:|---:|---:|'];
    for (const x of all) table.push(`| ${x.apps} | ${x.rate} | ${(x.rate * BATCH_MB).toFixed(1)} | ${x.remaining} | ${x.lost} | ${finite(x.cpuCores).toFixed(2)} | ${finite(x.peakRssMiB).toFixed(0)} |`);
    markdown.push(table.join('\n'));
  }
  return { charts, markdown };
}

export function chartsFor(kind: BenchKind, json: unknown): ChartSet {
  if (typeof json !== 'object' || json === null) throw new Error(`not a ${kind} report: ${typeof json}`);
  switch (kind) {
    case 'router': return routerCharts(json as Partial<Results>);
    case 'tls': return tlsCharts(json as Partial<TlsResults>);
    case 'logs': return logsCharts(json as LogsJson);
  }
}

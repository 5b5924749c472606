/**
 * HTTPS at a constant rate of new connections, one request on each, driven by h2load: per
 * phase an unrecorded lead-in at the rate, then the measured run, with the server's CPU per
 * request (/proc), h2load's own CPU, whether h2load kept to its schedule, and — on the router —
 * its handshake counters, which prove every handshake was a full one.
 */
import path from 'node:path';
import { withCpu, type Measured, type RateStack } from '../router-bench/http-parts.js';
import { latencyOf, type Latency } from '../router-bench/load.js';
import { HOST } from '../router-bench/processes.js';
import { errorKinds, type H2loadStats, type H2loadSummary } from './h2load-output.js';
import { H2LOAD, ratePlan, runH2load, type H2loadJob, type H2loadRun } from './h2load.js';

export interface NewConnectionTarget {
  name: string;
  /** SNI and Host. */
  host: string;
  port: number;
  /** The router's admin port: its TLS counters are read around each measured run. */
  routerAdminPort?: number;
}

/** The router's TLS counters (router_tls_handshakes_total by outcome, router_tls_resumed_total). */
export interface TlsCounters {
  ok: number;
  error: number;
  resumed: number;
}

export interface NewConnectionResult {
  target: string;
  rate: number;
  /** Scheduled length of the measured run. */
  seconds: number;
  /** Connections opened = requests sent (one each). */
  sent: number;
  /** 2xx responses. */
  ok: number;
  /** sent − ok: every non-2xx status, timeout and connection error. */
  errors: number;
  errorKinds: Record<string, number>;
  h2load: { requests: H2loadSummary['requests']; status: H2loadSummary['status'] };
  plan: { perPeriod: number; periodMs: number };
  /** From the first connection's scheduled time to the last one's. */
  scheduledSpanMs: number;
  /** From the first request's start to the last one's, in h2load's log (the connections' own spread, give or take their handshake times). */
  startSpanMs: number;
  /** Connections per second h2load actually opened: rate × scheduled span / observed span. */
  achievedRate: number;
  /** How far the last connection went out behind the schedule (observed − scheduled span), ms. */
  behindMs: number;
  /** The generator fell behind: achieved rate under 95 % of the rate. */
  behind: boolean;
  /** h2load's "finished in": from its start to the last response. */
  finishedMs: number;
  /** Per 2xx request, from sending it — after the handshake — to the end of the response (h2load's log), ms. */
  latency: Latency;
  /** Per connection: connect() to the end of the TLS handshake, ms (h2load's summary). */
  connect: H2loadStats;
  /** Per connection: connect() to the first byte of the response, handshake included, ms (h2load's summary). */
  firstByte: H2loadStats;
  generator: { cpuMs: number; cores: number; usPerConnection: number };
  tls: H2loadSummary['tls'];
  /** Router only: its counters' growth over the measured run. */
  handshakes?: TlsCounters;
  command: string;
}

/** Figures of one measured h2load run. Pure: the unit test feeds it a real run's output. */
export function newConnectionFigures(target: string, rate: number, seconds: number, run: Pick<H2loadRun, 'args' | 'summary' | 'log' | 'wallMs' | 'cpuMs'>, handshakes?: TlsCounters): NewConnectionResult {
  const { summary, log } = run;
  const plan = ratePlan(rate);
  const sent = summary.requests.total;
  const ok = summary.status['2xx'];
  const ticks = Math.ceil(sent / plan.perPeriod);
  const scheduledSpanMs = (ticks - 1) * plan.periodMs;
  let first = Infinity;
  let last = -Infinity;
  const okMs: number[] = [];
  for (let i = 0; i < log.count; i++) {
    const start = log.startUs[i]!;
    if (start < first) first = start;
    if (start > last) last = start;
    const status = log.status[i]!;
    if (status >= 200 && status < 300) okMs.push(log.durationUs[i]! / 1000);
  }
  // No connection got as far as its request: h2load prints zeros for the connection stats then.
  const none: H2loadStats = { min: NaN, max: NaN, mean: NaN, sd: NaN };
  const connected = summary.requests.started > 0;
  const startSpanMs = log.count >= 2 ? (last - first) / 1000 : NaN;
  // One tick (or all rows in one): no span to compare, nothing can be said about keeping up.
  const comparable = scheduledSpanMs > 0 && startSpanMs > 0;
  const achievedRate = comparable ? (rate * scheduledSpanMs) / startSpanMs : NaN;
  return {
    target,
    rate,
    seconds,
    sent,
    ok,
    errors: sent - ok,
    errorKinds: errorKinds(summary),
    h2load: { requests: summary.requests, status: summary.status },
    plan,
    scheduledSpanMs,
    startSpanMs,
    achievedRate,
    behindMs: comparable ? startSpanMs - scheduledSpanMs : NaN,
    behind: comparable && achievedRate < 0.95 * rate,
    finishedMs: summary.finishedMs,
    latency: latencyOf(Float64Array.from(okMs)),
    connect: connected ? summary.connect : none,
    firstByte: connected ? summary.firstByte : none,
    generator: { cpuMs: run.cpuMs, cores: run.cpuMs / run.wallMs, usPerConnection: (run.cpuMs * 1000) / sent },
    tls: summary.tls,
    ...(handshakes === undefined ? {} : { handshakes }),
    command: `${H2LOAD} ${run.args.join(' ')}`,
  };
}

export async function tlsCounters(adminPort: number): Promise<TlsCounters> {
  const text = await fetch(`http://${HOST}:${adminPort}/metrics`).then((r) => r.text());
  const c: TlsCounters = { ok: 0, error: 0, resumed: 0 };
  for (const line of text.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('router_tls_handshakes_total{outcome="ok"}')) c.ok += value;
    else if (line.startsWith('router_tls_handshakes_total{outcome="error"}')) c.error += value;
    else if (line.startsWith('router_tls_resumed_total')) c.resumed += value;
  }
  return c;
}

const REQUEST_TIMEOUT_SECONDS = 10;

export interface NewConnectionOptions {
  seconds: number;
  /** Unrecorded lead-in at the phase's rate (the server's upstream connections of this rate). */
  leadInSeconds: number;
  /** h2load's outputs and logs go here. */
  dir: string;
}

function job(t: NewConnectionTarget, rate: number, seconds: number, dir: string, label: string): H2loadJob {
  const base = path.join(dir, `h2load-${t.name.replace(/[^a-z0-9]+/gi, '-')}-${rate}-${label}`);
  return { host: t.host, address: HOST, port: t.port, rate, seconds, timeoutSeconds: REQUEST_TIMEOUT_SECONDS, outputFile: `${base}.out`, logFile: `${base}.tsv` };
}

/** Unrecorded: at `rate` for `seconds` (the once-per-target warm-up, a phase's lead-in). */
export async function newConnectionWarmUp(t: NewConnectionTarget, rate: number, seconds: number, dir: string): Promise<void> {
  if (seconds > 0) await runH2load(job(t, rate, seconds, dir, 'warm'));
}

export async function newConnectionPhase(stack: Pick<RateStack, 'quiet' | 'progress' | 'proxyPids' | 'backendPids'>, t: NewConnectionTarget, rate: number, o: NewConnectionOptions): Promise<Measured<NewConnectionResult>> {
  stack.progress.step(`https, new connections (h2load): ${t.name} at ${rate}/s`, o.leadInSeconds + o.seconds + 1.5);
  const r = await stack.quiet.run(async () => {
    await newConnectionWarmUp(t, rate, o.leadInSeconds, o.dir);
    // The lead-in, and the router's /metrics (an IPC round to every worker), stay out of the CPU per request.
    const before = t.routerAdminPort === undefined ? undefined : await tlsCounters(t.routerAdminPort);
    const m = await withCpu(stack, t.name, async () => newConnectionFigures(t.name, rate, o.seconds, await runH2load(job(t, rate, o.seconds, o.dir, 'measured'))));
    if (t.routerAdminPort === undefined || before === undefined) return m;
    const after = await tlsCounters(t.routerAdminPort);
    return { ...m, handshakes: { ok: after.ok - before.ok, error: after.error - before.error, resumed: after.resumed - before.resumed } };
  });
  const hs = r.handshakes === undefined ? '' : `; router: ${r.handshakes.ok} handshakes, ${r.handshakes.resumed} resumed`;
  stack.progress.note(`${r.ok} of ${r.sent} 2xx, ${r.errors} errors; ${r.achievedRate.toFixed(0)} connections/s achieved${r.behind ? ' (BEHIND)' : ''}; request p99 ${r.latency.p99.toFixed(2)} ms, connect+handshake mean ${r.connect.mean.toFixed(2)} ms max ${r.connect.max.toFixed(1)} ms; h2load ${r.generator.cores.toFixed(2)} cores${hs}; other load ${r.machine.foreignCores.toFixed(2)} cores`);
  return r;
}

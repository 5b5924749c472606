/**
 * The HTTP parts: the constant-rate ladder, the same rate under topology changes (router) or
 * reloads (nginx), and closed-loop maximum throughput — each for the direct backend, nginx
 * and the router side by side.
 */
import type { Dispatcher } from 'undici';
import { constantRate, hasWrk, undiciClosedLoop, wrk, type PacedTarget, type RateResult, type ThroughputResult } from './load.js';
import type { Nginx } from './nginx.js';
import { proxyConfig } from './nginx.js';
import type { Container, Platform } from './platform.js';
import { share, snapshot, type MachineShare, type Quiet } from './machine.js';
import { cpuMs, sleep } from './processes.js';
import type { Progress } from './progress.js';

export const BENCH_APP = 'bench';
export const BENCH_HOST = `${BENCH_APP}.localhost`;
/** The minimal Node proxy of node-floor.ts, measured in the throughput part only. */
export const FLOOR = 'node floor';

/** What the constant-rate ladder and the CPU accounting need (the TLS benchmark builds one too). */
export interface RateStack {
  targets: PacedTarget[];
  /** By target name: a Pool for plain HTTP, a Pool of TLS connections for HTTPS. */
  pools: Map<string, Dispatcher>;
  progress: Progress;
  quiet: Quiet;
  /** The processes doing a target's proxying (none for direct), read again before each run: a reload replaces nginx's workers. */
  proxyPids(target: string): Promise<number[]>;
  backendPids(): Promise<number[]>;
}

export interface HttpStack extends RateStack {
  platform: Platform;
  proxy: Nginx;
  proxyPort: number;
  /** Every backend port; the app and nginx's upstream use all of them outside the topology part. */
  backends: Container[];
}

/** CPU time per request of the proxy and of the backends during one run: what a request costs each. */
export interface CpuPerRequest {
  proxyUserUs: number;
  proxySysUs: number;
  backendUs: number;
}

export type Measured<T> = T & { cpu: CpuPerRequest; machine: MachineShare; attempts?: number };

/** `work`'s result counts what the CPU is divided by: `ok` (requests, handshakes) or `requests`. */
export async function withCpu<T extends { ok?: number; requests?: number }>(stack: Pick<RateStack, 'proxyPids' | 'backendPids'>, target: string, work: () => Promise<T>): Promise<Measured<T>> {
  const proxy = await stack.proxyPids(target);
  const backend = await stack.backendPids();
  const [p0, b0, m0] = [await cpuMs(proxy), await cpuMs(backend), await snapshot()];
  const result = await work();
  const [p1, b1, m1] = [await cpuMs(proxy), await cpuMs(backend), await snapshot()];
  const n = result.ok ?? result.requests ?? NaN;
  return {
    ...result,
    cpu: { proxyUserUs: ((p1.user - p0.user) * 1000) / n, proxySysUs: ((p1.sys - p0.sys) * 1000) / n, backendUs: ((b1.user + b1.sys - b0.user - b0.sys) * 1000) / n },
    machine: share(m0, m1),
  };
}

/** Between phases (the quiet check): stragglers, GC and the access-log flush of the last phase settle first. */
const SETTLE_MS = 1000;

/** Once per target before a ladder: connections (client's and upstream) and JIT warm. */
export async function warmUpTargets(stack: RateStack, targets: PacedTarget[], warmSeconds: number): Promise<void> {
  for (const t of targets) {
    stack.progress.step(`http: warm-up ${t.name} at 500 req/s`, warmSeconds);
    await constantRate(stack.pools.get(t.name)!, t, 500, warmSeconds);
  }
}

/** One phase of the ladder: after a quiet second, repeated when disturbed; `phaseWarmSeconds` of unrecorded lead-in at the rate. */
export async function ratePhase(stack: RateStack, t: PacedTarget, rate: number, seconds: number, phaseWarmSeconds: number): Promise<Measured<RateResult>> {
  stack.progress.step(`http: ${t.name} at ${rate} req/s`, phaseWarmSeconds + seconds + SETTLE_MS / 1000);
  const r = await stack.quiet.run(() => withCpu(stack, t.name, () => constantRate(stack.pools.get(t.name)!, t, rate, seconds, phaseWarmSeconds)));
  stack.progress.note(`${r.ok} ok, ${r.errors} errors, p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms, max ${r.latency.max.toFixed(1)} ms; other load ${r.machine.foreignCores.toFixed(2)} cores`);
  return r;
}

/** `warmSeconds`: once per target at the start; `phaseWarmSeconds`: unrecorded lead-in of every phase at its rate. */
export async function rateLadder(stack: RateStack, rates: number[], seconds: number, warmSeconds: number, phaseWarmSeconds: number): Promise<Array<Measured<RateResult>>> {
  await warmUpTargets(stack, stack.targets, warmSeconds);
  const results: Array<Measured<RateResult>> = [];
  // Rate by rate, targets interleaved: slow drift of the machine (steal, other tenants) then
  // touches the three targets alike instead of one of them.
  for (const rate of rates) {
    for (const t of stack.targets) results.push(await ratePhase(stack, t, rate, seconds, phaseWarmSeconds));
  }
  return results;
}

export interface TopologyResult {
  label: string;
  target: string;
  /** Milliseconds between changes. */
  everyMs: number;
  changes: number;
  changeFailures: number;
  /** nginx only: reloads nginx logged as performed. */
  reloadsSeen?: number;
  run: Measured<RateResult>;
  /** For each of the slowest requests, ms since the change before it (NaN: before the first): do they follow changes? */
  slowestAfterChangeMs: number[];
}

function sinceChange(run: RateResult, changeAtMs: number[]): number[] {
  return run.slowest.map((r) => {
    const before = changeAtMs.filter((c) => c <= r.atMs);
    return before.length === 0 ? NaN : r.atMs - before[before.length - 1]!;
  });
}

/**
 * Calls `change(k)` for k = 1, 2… every `everyMs` within `durationMs`. Offset by half a period
 * so that a 40 s run with a change every 20 s gets two changes, each with traffic after it.
 */
async function changeEvery(everyMs: number, durationMs: number, change: (k: number) => Promise<void>): Promise<{ changes: number; failures: number; atMs: number[] }> {
  const start = performance.now();
  let changes = 0;
  let failures = 0;
  const atMs: number[] = [];
  for (let k = 1; (k - 0.5) * everyMs < durationMs; k++) {
    const wait = start + (k - 0.5) * everyMs - performance.now();
    if (wait > 0) await sleep(wait);
    atMs.push(performance.now() - start);
    try {
      await change(k);
      changes++;
    } catch (err) {
      failures++;
      process.stderr.write(`  change ${k} failed: ${(err as Error).message}\n`);
    }
  }
  return { changes, failures, atMs };
}

export async function topology(stack: HttpStack, rate: number, seconds: number, routerEveryMs: number[], nginxEveryMs: number[], warmSeconds: number): Promise<TopologyResult[]> {
  // Changes start with the measured part, after the unrecorded lead-in.
  const changes = (everyMs: number, change: (k: number) => Promise<void>): Promise<{ changes: number; failures: number; atMs: number[] }> =>
    sleep(warmSeconds * 1000).then(() => changeEvery(everyMs, seconds * 1000, change));
  const half = Math.floor(stack.backends.length / 2);
  // Two disjoint sets that both answer: every change moves all traffic to other containers.
  const sets = [stack.backends.slice(0, half), stack.backends.slice(half)];
  const router = stack.targets.find((t) => t.name === 'router')!;
  const nginx = stack.targets.find((t) => t.name === 'nginx')!;
  const results: TopologyResult[] = [];

  for (const everyMs of routerEveryMs) {
    await stack.platform.scale(BENCH_APP, sets[0]!);
    stack.progress.step(`reload: router at ${rate} req/s, scale event every ${everyMs / 1000} s`, warmSeconds + seconds + SETTLE_MS / 1000);
    await stack.quiet.settle();
    const [run, changed] = await Promise.all([
      withCpu(stack, 'router', () => constantRate(stack.pools.get('router')!, router, rate, seconds, warmSeconds)),
      changes(everyMs, (k) => stack.platform.scale(BENCH_APP, sets[k % 2]!)),
    ]);
    results.push({ label: `router, scale every ${everyMs / 1000} s`, target: 'router', everyMs, changes: changed.changes, changeFailures: changed.failures, run, slowestAfterChangeMs: sinceChange(run, changed.atMs) });
    stack.progress.note(`${changed.changes} scale events, ${run.errors} errors, p99 ${run.latency.p99.toFixed(2)} ms, max ${run.latency.max.toFixed(1)} ms`);
  }
  await stack.platform.scale(BENCH_APP, stack.backends);

  const conf = (ports: Container[]): string => proxyConfig(stack.proxy.dir, stack.proxyPort, ports.map((c) => c.port));
  for (const everyMs of nginxEveryMs) {
    stack.progress.step(`reload: nginx at ${rate} req/s, reload every ${everyMs / 1000} s`, warmSeconds + seconds + SETTLE_MS / 1000);
    await stack.quiet.settle();
    const before = await stack.proxy.reloadsSeen();
    // What a topology change costs nginx: a new upstream block, then a reload (nginx -s reload sends SIGHUP).
    const [run, changed] = await Promise.all([
      withCpu(stack, 'nginx', () => constantRate(stack.pools.get('nginx')!, nginx, rate, seconds, warmSeconds)),
      changes(everyMs, async (k) => {
        await stack.proxy.writeConfig(conf(sets[k % 2]!));
        stack.proxy.reload();
      }),
    ]);
    // Old workers finish their connections before the log says they exited; the count only needs the notices.
    await sleep(500);
    const reloadsSeen = (await stack.proxy.reloadsSeen()) - before;
    results.push({ label: `nginx, reload every ${everyMs / 1000} s`, target: 'nginx', everyMs, changes: changed.changes, changeFailures: changed.failures, reloadsSeen, run, slowestAfterChangeMs: sinceChange(run, changed.atMs) });
    stack.progress.note(`${changed.changes} reloads (${reloadsSeen} logged by nginx), ${run.errors} errors ${JSON.stringify(run.errorKinds)}, p99 ${run.latency.p99.toFixed(2)} ms, max ${run.latency.max.toFixed(1)} ms`);
  }
  if (nginxEveryMs.length > 0) {
    await stack.proxy.writeConfig(conf(stack.backends));
    stack.proxy.reload();
    // Old workers linger while their keep-alive connections close; the next part must not see them.
    await sleep(2000);
  }
  return results;
}

export interface ThroughputSummary {
  rounds: Array<Measured<ThroughputResult>>;
  /** wrk with Connection: close: a new TCP connection per request (what accepting costs). Empty without wrk. */
  newConnections: Array<Measured<ThroughputResult>>;
  /** Median requests/s per target over the rounds. */
  median: Record<string, number>;
  /** From the medians; the floor ones are NaN when the Node floor was not measured. */
  ratios: { routerToNginx: number; routerToDirect: number; nginxToDirect: number; routerToFloor: number; floorToNginx: number };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `targets`: the ladder's, plus any measured here only (the Node floor). */
export async function throughput(stack: HttpStack, targets: PacedTarget[], connections: number, seconds: number, rounds: number, warmSeconds: number, closeSeconds: number): Promise<ThroughputSummary> {
  const useWrk = await hasWrk();
  if (!useWrk) stack.progress.note('wrk not found: closed loop with undici instead (install wrk for figures comparable to the docs)');
  const measure = (t: PacedTarget, s: number): Promise<ThroughputResult> => (useWrk ? wrk(t, connections, s) : undiciClosedLoop(t, connections, s));
  for (const t of targets) {
    stack.progress.step(`throughput: warm-up ${t.name}`, warmSeconds);
    await measure(t, warmSeconds);
  }
  const all: Array<Measured<ThroughputResult>> = [];
  for (let round = 1; round <= rounds; round++) {
    for (const t of targets) {
      stack.progress.step(`throughput: ${t.name}, ${connections} connections, round ${round}/${rounds}`, seconds + SETTLE_MS / 1000);
      const r = await stack.quiet.run(() => withCpu(stack, t.name, () => measure(t, seconds)));
      delete r.raw;
      all.push(r);
      stack.progress.note(`${Math.round(r.requestsPerSecond)} req/s, p99 ${r.latency.p99.toFixed(2)} ms, ${r.errors} errors; other load ${r.machine.foreignCores.toFixed(2)} cores`);
    }
  }
  const newConnections: Array<Measured<ThroughputResult>> = [];
  if (useWrk) {
    for (const t of targets) {
      stack.progress.step(`throughput: ${t.name}, a new connection per request, 20 connections`, closeSeconds + SETTLE_MS / 1000);
      const r = await stack.quiet.run(() => withCpu(stack, t.name, () => wrk(t, 20, closeSeconds, true)));
      delete r.raw;
      newConnections.push(r);
      stack.progress.note(`${Math.round(r.requestsPerSecond)} connections/s, ${r.errors} errors; other load ${r.machine.foreignCores.toFixed(2)} cores`);
    }
  }
  const med: Record<string, number> = {};
  for (const t of targets) med[t.name] = median(all.filter((r) => r.target === t.name).map((r) => r.requestsPerSecond));
  return {
    rounds: all,
    newConnections,
    median: med,
    ratios: {
      routerToNginx: med['router']! / med['nginx']!,
      routerToDirect: med['router']! / med['direct']!,
      nginxToDirect: med['nginx']! / med['direct']!,
      routerToFloor: med['router']! / (med[FLOOR] ?? NaN),
      floorToNginx: (med[FLOOR] ?? NaN) / med['nginx']!,
    },
  };
}

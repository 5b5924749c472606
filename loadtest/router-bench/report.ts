/**
 * The Markdown report: one section per part, then the issue's aims checked from the figures.
 */
import type { ProfileSummary } from './cpu-profile.js';
import type { CpuPerRequest, Measured, ThroughputSummary, TopologyResult } from './http-parts.js';
import { DISTURBED_CORES, disturbed as isDisturbed, type MachineShare } from './machine.js';
import type { RateResult } from './load.js';
import type { MemoryResult } from './memory.js';
import type { PropagationResult } from './propagation.js';
import type { ProbedResult } from './propagation-probes.js';
import type { WebSocketResult } from './websocket.js';

export interface Results {
  command: string;
  startedAt: string;
  durationSeconds: number;
  machine: string;
  setup: string[];
  rates?: Array<Measured<RateResult>>;
  topology?: TopologyResult[];
  throughput?: ThroughputSummary;
  propagation?: PropagationResult & { machine?: MachineShare };
  /** Probes from the 200: the router otherwise idle, then under other traffic. */
  propagationProbes?: Array<ProbedResult & { machine?: MachineShare }>;
  websocket?: WebSocketResult & { machine?: MachineShare };
  memory?: MemoryResult & { machine?: MachineShare };
  profile?: ProfileSummary | null;
  router: { workerDeaths: number; errorLines: number; warnLines: number; logFiles: string[]; logSamples: string[] };
}

export const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
export const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
export const int = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US').replace(/,/g, ' ') : '-');
export const kinds = (k: Record<string, number>): string => Object.entries(k).map(([n, c]) => `${n} ×${c}`).join(', ') || '—';
const bodies = (b: Record<string, number>): string => Object.entries(b).sort().map(([n, c]) => `${n} ${c}`).join(', ');

/** µs of CPU per request, user + system, of the proxy's processes ('-' for the direct backend). */
export function cpu(c: CpuPerRequest | undefined, direct: boolean): string {
  if (c === undefined || direct) return '-';
  return `${int(c.proxyUserUs + c.proxySysUs)} (${int(c.proxySysUs)} sys)`;
}

/** Cores other processes used during the phase (steal in brackets), ⚠ when it may have moved the figures. */
export function other(m: MachineShare | undefined, attempts?: number): string {
  if (m === undefined) return '-';
  return `${m.foreignCores.toFixed(2)}${isDisturbed(m) ? ' ⚠' : ''} (${m.stealCores.toFixed(2)})${attempts !== undefined && attempts > 1 ? `, attempt ${attempts}` : ''}`;
}

export function rateTable(rates: Array<Measured<RateResult>>): string {
  const rows = rates.map((r) => `| ${r.rate} | ${r.target} | ${r.ok} | ${r.errors} | ${f2(r.latency.mean)} | ${f2(r.latency.p50)} | ${f2(r.latency.p99)} | ${f1(r.latency.max)} | ${f2(r.service.p99)} | ${f2(r.lag.p99)} | ${cpu(r.cpu, r.target === 'direct')} | ${other(r.machine, r.attempts)} |`);
  return [
    '| req/s | target | ok | errors | mean ms | p50 ms | p99 ms | max ms | p99 from actual send | generator lag p99 | proxy CPU µs/request | other load, cores (steal) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

function topologyTable(rows: TopologyResult[]): string {
  return [
    '| run | req/s | changes | errors | error kinds | p50 ms | p99 ms | max ms | answered by | other load, cores (steal) |',
    '|---|---:|---:|---:|---|---:|---:|---:|---|---:|',
    ...rows.map((t) => `| ${t.label}${t.reloadsSeen !== undefined ? ` (${t.reloadsSeen} reloads logged)` : ''} | ${t.run.rate} | ${t.changes}${t.changeFailures > 0 ? ` (+${t.changeFailures} failed)` : ''} | ${t.run.errors} | ${kinds(t.run.errorKinds)} | ${f2(t.run.latency.p50)} | ${f2(t.run.latency.p99)} | ${f1(t.run.latency.max)} | ${bodies(t.run.bodies)} | ${other(t.run.machine)} |`),
  ].join('\n');
}

function throughputTable(t: ThroughputSummary): string {
  const targets = Object.keys(t.median);
  const rounds = Math.max(...targets.map((n) => t.rounds.filter((r) => r.target === n).length));
  const head = `| target | ${Array.from({ length: rounds }, (_, i) => `round ${i + 1} req/s`).join(' | ')} | median req/s | p50 / p99 ms (each round) | errors | proxy CPU µs/request (sys) | backend CPU µs/request | other load, cores (each round) |`;
  const sep = `|---|${'---:|'.repeat(rounds)}---:|---|---:|---:|---:|---:|`;
  const rows = targets.map((n) => {
    const rs = t.rounds.filter((r) => r.target === n);
    const mid = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
    const c: CpuPerRequest = { proxyUserUs: mid(rs.map((r) => r.cpu.proxyUserUs)), proxySysUs: mid(rs.map((r) => r.cpu.proxySysUs)), backendUs: mid(rs.map((r) => r.cpu.backendUs)) };
    return `| ${n} | ${rs.map((r) => int(r.requestsPerSecond)).join(' | ')} | **${int(t.median[n]!)}** | ${rs.map((r) => `${f2(r.latency.p50)} / ${f2(r.latency.p99)}`).join('; ')} | ${rs.reduce((s, r) => s + r.errors, 0)} | ${cpu(c, n === 'direct')} | ${f1(c.backendUs)} | ${rs.map((r) => other(r.machine, r.attempts)).join('; ')} |`;
  });
  return [head, sep, ...rows].join('\n');
}

export function aims(r: Results): Array<{ aim: string; result: string; met: boolean | null }> {
  const out: Array<{ aim: string; result: string; met: boolean | null }> = [];
  const routerRuns = [...(r.rates ?? []).filter((x) => x.target === 'router'), ...(r.topology ?? []).filter((x) => x.target === 'router').map((x) => x.run)];
  if (routerRuns.length > 0) {
    const errors = routerRuns.reduce((s, x) => s + x.errors, 0);
    out.push({ aim: '0 errors through the router (every constant-rate run, scale events included)', result: `${errors} errors in ${routerRuns.reduce((s, x) => s + x.sent, 0)} requests`, met: errors === 0 });
  }
  if (r.websocket !== undefined) {
    const w = r.websocket;
    out.push({ aim: '0 WebSockets dropped, each still echoing', result: `${w.dropped} dropped of ${w.opened}; ${w.echoedAtEnd}/${w.opened} echoed at the end`, met: w.dropped === 0 && w.echoedAtEnd === w.opened && w.opened === w.sockets });
  }
  if (r.propagation !== undefined) {
    const p = r.propagation;
    out.push({ aim: 'propagation p99 ≤ 10 ms', result: `p99 ${f2(p.all.p99)} ms (every worker), max ${f2(p.all.max)} ms, ${p.notPropagated} not propagated in 2 s (closed-loop pollers, machine saturated)`, met: p.all.p99 <= 10 && p.notPropagated === 0 });
  }
  for (const q of r.propagationProbes ?? []) {
    out.push({ aim: 'propagation p99 ≤ 10 ms', result: `p99 ${f2(q.all.p99)} ms (every worker), max ${f2(q.all.max)} ms, ${q.notPropagated} not propagated in 2 s (probes from the 200, ${probeLoad(q)})`, met: q.all.p99 <= 10 && q.notPropagated === 0 });
  }
  const at2000 = (r.rates ?? []).find((x) => x.target === 'router' && x.rate === 2000);
  if (at2000 !== undefined) {
    const direct = (r.rates ?? []).find((x) => x.target === 'direct' && x.rate === 2000);
    out.push({ aim: 'p99 ≤ 2 ms at 2000 req/s', result: `router p99 ${f2(at2000.latency.p99)} ms (from actual send ${f2(at2000.service.p99)} ms; direct backend ${f2(direct?.latency.p99 ?? NaN)} ms)`, met: at2000.latency.p99 <= 2 });
  }
  if (r.throughput !== undefined) {
    const ratio = r.throughput.ratios.routerToNginx;
    out.push({ aim: 'max throughput ≥ 0.5× nginx', result: `${f2(ratio)}× (router ${int(r.throughput.median['router']!)} req/s, nginx ${int(r.throughput.median['nginx']!)} req/s, medians)`, met: ratio >= 0.5 });
  }
  out.push({ aim: 'no router worker died', result: `${r.router.workerDeaths} replaced`, met: r.router.workerDeaths === 0 });
  return out;
}

function probeLoad(q: ProbedResult): string {
  return q.backgroundRate > 0 ? `${q.backgroundRate} req/s of another app` : 'router otherwise idle';
}

export function renderReport(r: Results): string {
  const s: string[] = [];
  s.push(`# Router benchmark, ${r.startedAt}`, '');
  s.push('```sh', r.command, '```', '');
  s.push(`- machine: ${r.machine}`);
  for (const line of r.setup) s.push(`- ${line}`);
  s.push(`- total run time ${Math.round(r.durationSeconds)} s; a single run: on two shared cores, compare runs before trusting one figure.`);
  s.push(`- "other load": cores used during a phase by processes outside this benchmark (kernel threads included), from /proc; ⚠ when it or the hypervisor's steal (in brackets) is above ${DISTURBED_CORES} — that phase shared the machine with someone else's work.`, '');

  if (r.rates !== undefined) {
    s.push('## Constant rate', '');
    s.push('Latency from each request\'s *scheduled* send time to the end of its response; "p99 from actual send" leaves out the generator\'s own lateness. Each phase follows an unrecorded lead-in at the same rate, so the connections are those of the rate (opening connections is measured under "Maximum throughput").', '');
    s.push(rateTable(r.rates), '');
  }
  if (r.topology !== undefined) {
    s.push('## Topology changes under load', '');
    s.push('Router: `scale` events alternating the app between two disjoint sets of containers that all answer. nginx: a new `upstream` written and a reload (SIGHUP, what `nginx -s reload` sends) at each change.', '');
    s.push(topologyTable(r.topology), '');
    s.push('The 10 slowest requests of each run, and how long after the change before them they were scheduled (ms; a run of small numbers means the changes cause the tail):', '');
    for (const t of r.topology) s.push(`- ${t.label}: ${t.run.slowest.map((x, i) => `${f1(x.ms)} ms @ +${f1(t.slowestAfterChangeMs[i] ?? NaN)}`).join(', ')}`);
    s.push('');
  }
  if (r.throughput !== undefined) {
    const t = r.throughput;
    const tool = t.rounds[0]?.tool ?? 'wrk';
    s.push('## Maximum throughput', '');
    s.push(`Closed loop, ${t.rounds[0]?.connections ?? 50} keep-alive connections, ${tool === 'wrk' ? '`wrk -t 1`' : 'undici (wrk not installed)'}, ${Math.round(t.rounds[0]?.seconds ?? 0)} s per round, targets interleaved.`, '');
    s.push(throughputTable(t), '');
    if (t.newConnections.length > 0) {
      s.push('A new connection per request (`wrk -t 1 -c 20 -H "Connection: close"`): what accepting a connection costs.', '');
      s.push('| target | requests (= connections) /s | p50 / p99 ms | errors | proxy CPU µs/connection (sys) | other load, cores (steal) |', '|---|---:|---|---:|---:|---:|');
      for (const r of t.newConnections) s.push(`| ${r.target} | ${int(r.requestsPerSecond)} | ${f2(r.latency.p50)} / ${f2(r.latency.p99)} | ${r.errors} | ${cpu(r.cpu, r.target === 'direct')} | ${other(r.machine, r.attempts)} |`);
      s.push('');
    }
    s.push(`Ratios of the medians: **router / nginx = ${f2(t.ratios.routerToNginx)}**, router / direct = ${f2(t.ratios.routerToDirect)}, nginx / direct = ${f2(t.ratios.nginxToDirect)}${Number.isFinite(t.ratios.routerToFloor) ? `; router / node floor = ${f2(t.ratios.routerToFloor)}, node floor / nginx = ${f2(t.ratios.floorToNginx)}` : ''}. CPU per request from /proc/<pid>/stat of the proxy's processes (median round; 10 ms ticks).`, '');
  }
  if (r.propagation !== undefined) {
    const p = r.propagation;
    s.push('## Propagation', '');
    s.push(`${p.changes} scale events flipping an app between two containers; ${p.pollers} pollers on their own keep-alive connections, back to back (${int(p.pollRequests)} requests, ${p.pollErrors} errors). Time from the control plane's 200 to the new container's first answer.`, '');
    s.push('| | p50 ms | p90 ms | p99 ms | max ms |', '|---|---:|---:|---:|---:|');
    s.push(`| first poller | ${f2(p.first.p50)} | ${f2(p.first.p90)} | ${f2(p.first.p99)} | ${f2(p.first.max)} |`);
    s.push(`| every poller (both workers) | ${f2(p.all.p50)} | ${f2(p.all.p90)} | ${f2(p.all.p99)} | ${f2(p.all.max)} |`);
    s.push(`| the API call itself (send → 200) | ${f2(p.apiMs.p50)} | ${f2(p.apiMs.p90)} | ${f2(p.apiMs.p99)} | ${f2(p.apiMs.max)} |`, '');
    s.push(`Seen by some poller before the 200 reached the client: ${p.seenBefore200} of ${p.changes} (counted as 0 ms). Not propagated within 2 s: ${p.notPropagated}. Other load during the part: ${other(p.machine)} cores.`, '');
  }
  if (r.propagationProbes !== undefined && r.propagationProbes.length > 0) {
    s.push('### Propagation, probed from the 200', '');
    s.push(`After each change, ${r.propagationProbes[0]!.probes} probes (keep-alive connections over both workers) start when the 200 arrives and ask back to back until the new container answers; nothing polls between changes. The pollers above keep both cores busy all the time (a closed loop of ~2000 req/s), so their figure includes waiting for a core at every hop; this one measures the issue's definition as a client asking right after the 200 sees it, on a router idle or at an ordinary load. It is the easier measure: no request is caught in flight across the change. The control rows: between two changes the same probes ask once with nothing changed — the floor any change is seen above on this machine at that moment.`, '');
    s.push('| | p50 ms | p90 ms | p99 ms | max ms | old container answered after the 200 | not propagated in 2 s | other load, cores (steal) |', '|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const q of r.propagationProbes) {
      const load = probeLoad(q);
      s.push(`| every probe (both workers), ${load} | ${f2(q.all.p50)} | ${f2(q.all.p90)} | ${f2(q.all.p99)} | ${f2(q.all.max)} | ${q.staleAnswers} | ${q.notPropagated} | ${other(q.machine)} |`);
      s.push(`| first probe, ${load} | ${f2(q.first.p50)} | ${f2(q.first.p90)} | ${f2(q.first.p99)} | ${f2(q.first.max)} | | | |`);
      s.push(`| control, no change: one request on every probe, ${load} | ${f2(q.controlAll.p50)} | ${f2(q.controlAll.p90)} | ${f2(q.controlAll.p99)} | ${f2(q.controlAll.max)} | | | |`);
      s.push(`| control, no change: the first probe's answer, ${load} | ${f2(q.controlFirst.p50)} | ${f2(q.controlFirst.p90)} | ${f2(q.controlFirst.p99)} | ${f2(q.controlFirst.max)} | | | |`);
      s.push(`| the API call itself, ${load} | ${f2(q.apiMs.p50)} | ${f2(q.apiMs.p90)} | ${f2(q.apiMs.p99)} | ${f2(q.apiMs.max)} | | | |`);
    }
    const errors = r.propagationProbes.map((q) => `${q.probeErrors} probe errors${q.backgroundRate > 0 ? `, ${q.backgroundErrors} errors in ${int(q.backgroundSent)} background requests` : ''}`).join('; ');
    s.push('', `${errors}.`, '');
  }
  if (r.websocket !== undefined) {
    const w = r.websocket;
    s.push('## WebSocket survival', '');
    s.push(`| sockets | opened | scale events | other apps deployed | dropped | heartbeat echoes (failed) | echoed at the end | new sockets on the current set |`);
    s.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
    s.push(`| ${w.sockets} | ${w.opened} | ${w.scaleEvents} | ${w.otherDeploys} | **${w.dropped}** ${Object.keys(w.dropCodes).length > 0 ? `(close codes ${kinds(w.dropCodes)})` : ''} | ${w.heartbeats} (${w.heartbeatFailures}) | ${w.echoedAtEnd} | ${w.newOnCurrentSet}/${w.newOpened} |`, '');
    s.push(`Sockets by container at the end: ${bodies(w.byContainer)}. Other load during the part: ${other(w.machine)} cores.`, '');
  }
  if (r.memory !== undefined) {
    const m = r.memory;
    s.push('## Memory', '');
    s.push(`${int(m.apps)} apps created through the API in ${f1(m.createSeconds)} s (${int(m.eventsPerSecond)} events/s, ${m.createFailures} failures); ROUTE_CACHE_MAX=${m.cacheMax} per worker; ${int(m.hostnamesRequested)} distinct hostnames requested ${m.passes} times over (${m.requestErrors} errors); V8 heap used includes garbage not yet collected. Redis used_memory ${f1(m.redisUsedMiB)} MiB. Other load during the part: ${other(m.machine)} cores.`, '');
    const ids = Object.keys(m.samples[0]?.workers ?? {});
    s.push(`| state | ${ids.map((id) => `worker ${id} RSS MiB`).join(' | ')} | primary RSS MiB | V8 heap used, all workers MiB | ${ids.map((id) => `worker ${id} heap after full GC MiB`).join(' | ')} | cache entries, all workers |`);
    s.push(`|---|${'---:|'.repeat(ids.length)}---:|---:|${'---:|'.repeat(ids.length)}---:|`);
    for (const x of m.samples) s.push(`| ${x.label} | ${ids.map((id) => f1(x.workers[id] ?? NaN)).join(' | ')} | ${f1(x.primary)} | ${f1(x.heapUsedMiB)} | ${ids.map((id) => f1(x.retainedMiB[id] ?? NaN)).join(' | ')} | ${int(x.routeCacheEntries)} |`);
    s.push('', 'RSS and "heap used" are read first; then each worker is made to collect garbage twice (through an inspector the memory part starts the router with) and its heap measured: what it really holds. The collections lower the next RSS reading.');
    s.push('');
  }
  if (r.profile) {
    const p = r.profile;
    s.push('## Router CPU profile', '');
    s.push(`${p.files.length} profiles (${int(p.busyMs)} ms busy, idle left out). Self time:`, '');
    s.push('| area | share |', '|---|---:|');
    for (const a of p.byArea.slice(0, 12)) s.push(`| ${a.area} | ${(a.share * 100).toFixed(1)}% |`);
    s.push('', '| function | where | share |', '|---|---|---:|');
    for (const t of p.top) s.push(`| \`${t.name}\` | ${t.where || '(native)'} | ${(t.share * 100).toFixed(1)}% |`);
    s.push('');
  }
  const phases = [...(r.rates ?? []).map((x) => x.machine), ...(r.topology ?? []).map((x) => x.run.machine), ...(r.throughput?.rounds ?? []).map((x) => x.machine), ...(r.throughput?.newConnections ?? []).map((x) => x.machine), r.propagation?.machine, ...(r.propagationProbes ?? []).map((q) => q.machine), r.websocket?.machine, r.memory?.machine].filter((m): m is MachineShare => m !== undefined);
  const disturbed = phases.filter((m) => isDisturbed(m)).length;
  s.push('## Aims', '');
  s.push(`${disturbed} of ${phases.length} measured phases shared the machine with other work (⚠ above).`, '');
  s.push('| aim | this run | met |', '|---|---|---|');
  for (const a of aims(r)) s.push(`| ${a.aim} | ${a.result} | ${a.met === null ? '?' : a.met ? 'yes' : '**no**'} |`);
  s.push('');
  s.push(`Router logs: ${r.router.errorLines} error lines, ${r.router.warnLines} warnings (${r.router.logFiles.join(', ')}; kept with --keep-logs).`, '');
  for (const line of r.router.logSamples) s.push(`- \`${line.replace(/`/g, "'")}\``);
  if (r.router.logSamples.length > 0) s.push('');
  return s.join('\n');
}

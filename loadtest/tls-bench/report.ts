/**
 * The TLS benchmark's Markdown report: setup, handshakes (cold, warm, router / nginx),
 * where the CPU goes, HTTPS at constant rates, then the issue's aims checked against the run.
 */
import type { ProfileSummary } from '../router-bench/cpu-profile.js';
import type { Measured } from '../router-bench/http-parts.js';
import type { RateResult } from '../router-bench/load.js';
import { DISTURBED_CORES, disturbed as isDisturbed, type MachineShare } from '../router-bench/machine.js';
import { cpu, f1, f2, int, kinds, other, rateTable } from '../router-bench/report.js';
import { KEY_LABEL } from './certificates.js';
import type { HandshakePhase, HandshakeResults } from './handshakes.js';
import { newConnectionSection } from './new-connections-report.js';
import type { NewConnectionResult } from './new-connections.js';
import type { PerfSummary } from './perf.js';
import type { ProfileWindow } from './profile.js';
import type { UploadResult } from './upload.js';

export interface TlsResults {
  command: string;
  startedAt: string;
  durationSeconds: number;
  machine: string;
  setup: string[];
  prep: { namesPerSet: number; certSeconds: number; upload: UploadResult; nginxStartSeconds: number };
  handshakes?: HandshakeResults;
  profiles?: ProfileWindow[];
  /** null: perf could not sample here (the reason in perfNote). */
  perf?: PerfSummary[] | null;
  perfNote?: string;
  /** Plain HTTP and keep-alive HTTPS (the paced client). */
  rates?: Array<Measured<RateResult>>;
  /** A new connection per request (h2load). Reports from before h2load have them in `rates`. */
  newConnections?: Array<Measured<NewConnectionResult>>;
  /** Target names of the rate part, by role. */
  rateTargets?: { http: string; https: string; httpsNew: string; nginxHttp: string; nginxHttps: string; nginxHttpsNew: string };
  router: { workerDeaths: number; errorLines: number; warnLines: number; logFiles: string[]; logSamples: string[] };
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '-');
const tls = (v: string): string => v.replace('TLSv', '');
const hsCpu = (p: HandshakePhase): string => cpu(p.cpu, false);

function coldTable(rows: HandshakePhase[]): string {
  return [
    '| certificates | TLS | target | handshakes | errors | handshakes/s | p50 ms | p99 ms | max ms | Redis lookups | server CPU µs/handshake (sys) | client CPU µs/handshake | other load, cores (steal) |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${KEY_LABEL[r.keyType]} | ${tls(r.version)} | ${r.target} | ${r.ok} | ${r.errors}${r.errors > 0 ? ` (${kinds(r.errorKinds)})` : ''} | ${int(r.perSecond)} | ${f2(r.latency.p50)} | ${f2(r.latency.p99)} | ${f1(r.latency.max)} | ${r.lookups ?? '-'} | ${hsCpu(r)} | ${int(r.clientUsPerHandshake)} | ${other(r.machine)} |`),
  ].join('\n');
}

function warmTable(rows: HandshakePhase[]): string {
  return [
    '| certificates | TLS | target | round | handshakes/s | handshakes | errors | p50 ms | p99 ms | max ms | server CPU µs/handshake (sys) | client cores (µs/handshake) | Redis lookups | other load, cores (steal) |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${KEY_LABEL[r.keyType]} | ${tls(r.version)} | ${r.target} | ${r.round} | **${int(r.perSecond)}** | ${r.ok} | ${r.errors}${r.errors > 0 ? ` (${kinds(r.errorKinds)})` : ''} | ${f2(r.latency.p50)} | ${f2(r.latency.p99)} | ${f1(r.latency.max)} | ${hsCpu(r)} | ${f2(r.clientCores)} (${int(r.clientUsPerHandshake)}) | ${r.lookups ?? '-'} | ${other(r.machine, r.attempts)} |`),
  ].join('\n');
}

function mid(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[s.length >> 1]!;
}

function handshakeSection(h: HandshakeResults, s: string[]): void {
  const o = h.options;
  s.push('## Full handshakes', '');
  s.push(`Every handshake is a full one: a new TCP connection, the SNI name, Node's client defaults (ciphers, groups), the chain verified against the test CA, no session offered (so none resumed: ${h.warm.reduce((n, r) => n + r.reused, 0) + h.cold.reduce((n, r) => n + r.reused, 0)} were), then a clean close (close_notify, FIN, waiting for the server's) and no request. Closed loop, ${o.concurrency} handshakes in flight in all, cycling over the set's names; the router and nginx take turns, ${o.rounds} round(s) of ${o.seconds} s each. CPU per handshake from /proc/<pid>/stat of the server's processes (router: primary + workers; nginx: master + workers) — what the ratio of handshakes/s cannot show when the client takes its share of the same two cores.`, '');
  s.push('### First handshake per name (cold)', '');
  s.push('Each name once, right after the router started: each handshake is a miss in the worker that takes it — one Redis MGET, the key envelope opened, the SecureContext built. nginx loaded every certificate at start: its pass is an ordinary one, for reference. One pass, never repeated (it would not be cold).', '');
  s.push(coldTable(h.cold), '');
  s.push(`Warm-up before the measured runs (round-robin accept spreads a name's handshakes over the workers): ${h.warmUps.map((w) => `${KEY_LABEL[w.keyType]}: ${w.passes} pass(es), Redis lookups per pass ${w.lookupsPerPass.join(', ')}`).join('; ')}.`, '');
  s.push('### Warm: handshakes per second', '');
  s.push(warmTable(h.warm), '');
  if ([...h.cold, ...h.warm].some((r) => (r.errorKinds['DEPTH_ZERO_SELF_SIGNED_CERT'] ?? 0) > 0)) {
    s.push('`DEPTH_ZERO_SELF_SIGNED_CERT`: the server presented a self-signed certificate — the router\'s generated default one — instead of the name\'s, and the client refused it.', '');
  }
  s.push('| certificates | TLS | router handshakes/s | nginx handshakes/s | **router / nginx** | router CPU µs/handshake | nginx CPU µs/handshake | nginx / router CPU |', '|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of h.ratios) {
    const c = (t: string): number => mid(h.warm.filter((w) => w.keyType === r.keyType && w.version === r.version && w.target === t).map((w) => w.cpu.proxyUserUs + w.cpu.proxySysUs));
    s.push(`| ${KEY_LABEL[r.keyType]} | ${tls(r.version)} | ${int(r.router)} | ${int(r.nginx)} | **${f2(r.ratio)}** | ${int(c('router'))} | ${int(c('nginx'))} | ${f2(c('nginx') / c('router'))} |`);
  }
  s.push('', 'Medians over the rounds. "nginx / router CPU" is the ratio of handshakes per CPU-second, whatever the client took.', '');
  const seen = new Map<string, string>();
  for (const r of [...h.cold, ...h.warm]) {
    for (const x of r.samples) seen.set(`${r.target}, ${KEY_LABEL[r.keyType]}, TLS ${tls(r.version)}`, `${x.protocol}, ${x.cipher}, key exchange ${x.group}, certificate ${x.certificateKey}, ALPN ${x.alpn}`);
  }
  s.push('Negotiated (first handshake of a run):', '');
  for (const [k, v] of seen) s.push(`- ${k}: ${v}`);
  s.push('');
}

function v8Table(p: ProfileSummary, s: string[]): void {
  s.push('| area | share |', '|---|---:|');
  for (const a of p.byArea.slice(0, 10)) s.push(`| ${a.area} | ${pct(a.share)} |`);
  s.push('', '| function | where | self share |', '|---|---|---:|');
  for (const t of p.top) s.push(`| \`${t.name}\` | ${t.where || '(native)'} | ${pct(t.share)} |`);
  s.push('');
}

function perfSection(perf: PerfSummary[], s: string[]): void {
  s.push('### Native code: perf', '');
  s.push('`perf record -e cpu-clock -F 999` on the server\'s processes during one warm closed-loop window per target and set (no V8 profiler running). A sample is ~1 ms of CPU, so samples ÷ handshakes gives µs per handshake per area. OpenSSL is linked into the node binary (its C symbols) and is libssl/libcrypto for nginx; V8 code run from the JIT has no symbols here.', '');
  const keys = [...new Set(perf.map((p) => `${p.keyType} ${p.version}`))];
  for (const key of keys) {
    const group = perf.filter((p) => `${p.keyType} ${p.version}` === key);
    const first = group[0]!;
    const targets = group.map((g) => g.target);
    const areas = [...new Set(group.flatMap((g) => g.areas.map((a) => a.area)))];
    s.push(`**${KEY_LABEL[first.keyType]}, TLS ${tls(first.version)}** — ${group.map((g) => `${g.target}: ${int(g.run.perSecond)} handshakes/s, ${int(g.usPerHandshake)} µs of CPU per handshake sampled`).join('; ')}`, '');
    s.push(`| area | ${targets.map((t) => `${t} µs/handshake (share)`).join(' | ')} |`, `|---|${targets.map(() => '---:').join('|')}|`);
    for (const area of areas) s.push(`| ${area} | ${group.map((g) => { const a = g.areas.find((x) => x.area === area); return a === undefined ? '-' : `${int(a.usPerHandshake)} (${pct(a.share)})`; }).join(' | ')} |`);
    s.push('');
    for (const g of group) {
      s.push(`Top functions, ${g.target}: ${g.top.slice(0, 10).map((t) => `\`${t.symbol.slice(0, 60)}\` ${pct(t.share)}`).join(', ')}`, '');
    }
  }
}

export function aims(r: TlsResults): Array<{ aim: string; result: string; met: boolean | null }> {
  const out: Array<{ aim: string; result: string; met: boolean | null }> = [];
  const hs = r.handshakes;
  const hsRouter = hs === undefined ? [] : [...hs.cold, ...hs.warm].filter((x) => x.target === 'router');
  const rateRouter = [...(r.rates ?? []), ...(r.newConnections ?? [])].filter((x) => x.target.startsWith('router'));
  if (hsRouter.length + rateRouter.length > 0) {
    const errors = hsRouter.reduce((s, x) => s + x.errors, 0) + rateRouter.reduce((s, x) => s + x.errors, 0);
    const total = hsRouter.reduce((s, x) => s + x.ok + x.errors, 0) + rateRouter.reduce((s, x) => s + x.sent, 0);
    out.push({ aim: '0 errors through the router (handshakes and requests)', result: `${errors} errors in ${int(total)} handshakes and requests`, met: errors === 0 });
  }
  for (const x of hs?.ratios ?? []) {
    const perCpu = (t: string): number => 1 / mid(hs!.warm.filter((w) => w.keyType === x.keyType && w.version === x.version && w.target === t).map((w) => w.cpu.proxyUserUs + w.cpu.proxySysUs));
    out.push({ aim: `full handshakes/s ≥ 0.5× nginx's, ${KEY_LABEL[x.keyType]}, TLS ${tls(x.version)}`, result: `${f2(x.ratio)}× (router ${int(x.router)}/s, nginx ${int(x.nginx)}/s, warm, medians); per CPU-second of the server ${f2(perCpu('router') / perCpu('nginx'))}×`, met: x.ratio >= 0.5 });
  }
  const t = r.rateTargets;
  if (t !== undefined && r.rates !== undefined) {
    for (const rate of [...new Set(r.rates.map((x) => x.rate))]) {
      const http = r.rates.find((x) => x.rate === rate && x.target === t.http);
      const https = r.rates.find((x) => x.rate === rate && x.target === t.https);
      if (http === undefined || https === undefined) continue;
      const ratio = https.latency.p99 / http.latency.p99;
      out.push({ aim: `keep-alive HTTPS p99 ≤ 2× HTTP p99 at ${rate} req/s`, result: `${f2(https.latency.p99)} / ${f2(http.latency.p99)} ms = ${f2(ratio)}×`, met: ratio <= 2 });
    }
  }
  if (r.profiles !== undefined || r.perf !== undefined) {
    // perf's split is the answer when there is one; the V8 profile's JavaScript share otherwise.
    const top3 = (p: PerfSummary): string => p.areas.slice(0, 3).map((a) => `${a.area.replace(/ \(.*\)$/, '')} ${int(a.usPerHandshake)}`).join(', ');
    const perfText = (r.perf ?? []).filter((p) => p.target === 'router').map((p) => {
      const nginx = r.perf!.find((n) => n.target === 'nginx' && n.keyType === p.keyType && n.version === p.version);
      return `${KEY_LABEL[p.keyType]}: router ${int(p.usPerHandshake)} µs/handshake (${top3(p)})${nginx === undefined ? '' : `, nginx ${int(nginx.usPerHandshake)} (${top3(nginx)})`}`;
    }).join('; ');
    const v8Text = (r.profiles ?? []).map((p) => `${KEY_LABEL[p.keyType]}: JavaScript ${pct(1 - (p.workers?.byArea.filter((a) => a.area.includes('(program)') || a.area === 'native/builtins' || a.area === 'garbage collector').reduce((x, a) => x + a.share, 0) ?? NaN))} of the workers' busy time`).join('; ');
    out.push({ aim: 'say where the CPU goes', result: perfText !== '' ? `${perfText} (perf); V8 profile: ${v8Text || 'not taken'}` : (v8Text || 'no profile'), met: perfText !== '' || v8Text !== '' ? true : null });
  }
  out.push({ aim: 'no router worker died', result: `${r.router.workerDeaths} replaced`, met: r.router.workerDeaths === 0 });
  return out;
}

export function renderTlsReport(r: TlsResults): string {
  const s: string[] = [];
  s.push(`# TLS benchmark, ${r.startedAt}`, '');
  s.push('```sh', r.command, '```', '');
  s.push(`- machine: ${r.machine}`);
  for (const line of r.setup) s.push(`- ${line}`);
  s.push(`- preparation: ${r.prep.namesPerSet} names per set; certificates issued in ${f1(r.prep.certSeconds)} s; ${r.prep.upload.apps} apps with their domain and certificate through the control plane, ${r.prep.upload.events} events in ${f1(r.prep.upload.seconds)} s (${int(r.prep.upload.events / r.prep.upload.seconds)} events/s, ${r.prep.upload.failures} failures); nginx started with ${r.prep.upload.apps} certificates in ${f2(r.prep.nginxStartSeconds)} s`);
  s.push(`- total run time ${Math.round(r.durationSeconds)} s; a single run: on two shared cores, compare runs before trusting one figure.`);
  s.push(`- "other load": cores used during a phase by processes outside this benchmark, from /proc; ⚠ when it or the hypervisor's steal (in brackets) is above ${DISTURBED_CORES}.`, '');

  if (r.handshakes !== undefined) handshakeSection(r.handshakes, s);

  if (r.profiles !== undefined || r.perf !== undefined) {
    s.push('## Where the router\'s CPU goes during handshakes', '');
    for (const p of r.profiles ?? []) {
      s.push(`### V8 profile, ${KEY_LABEL[p.keyType]}, TLS ${tls(p.version)}`, '');
      s.push(`A router of its own, started with an inspector; V8's profiler on in every process for one warm ${f1(p.run.seconds)} s closed loop only (${int(p.run.perSecond)} handshakes/s under the profiler, ${p.run.errors} errors). Native work is charged to the JavaScript function that called into it ("native/builtins": \`writeUtf8String\` is a write to a socket or the cluster's IPC pipe, \`certCbDone\` resumes the handshake after the SNI callback), or to "(program)" when no JavaScript is on the stack (a handshake step run from a socket read, libuv, the kernel); perf below splits native time by library.`, '');
      if (p.workers !== null) {
        s.push(`Workers (${p.workers.files.join(', ')}), ${int(p.workers.busyMs)} ms busy:`, '');
        v8Table(p.workers, s);
      }
      if (p.primary !== null) s.push(`Primary (accepts every connection and hands it to a worker): ${int(p.primary.busyMs)} ms busy; ${p.primary.top.slice(0, 5).map((t) => `\`${t.name}\` ${pct(t.share)}`).join(', ')}.`, '');
    }
    if (r.perf === null) s.push(`perf: not run (${r.perfNote ?? 'unavailable'}).`, '');
    else if (r.perf !== undefined && r.perf.length > 0) perfSection(r.perf, s);
  }

  if (r.rates !== undefined) {
    s.push('## Plain HTTP and keep-alive HTTPS at constant rates', '');
    s.push('Latency from each request\'s *scheduled* send time (router-bench\'s paced client, this Node process), after an unrecorded lead-in at the rate. Keep-alive: an undici Pool of TLS connections (`ca`, `servername`), kept open between requests (the router closes a connection idle for ROUTER_KEEPALIVE_TIMEOUT, nginx here after 300 s; a connection re-opened in a phase may resume its TLS session). "router http" is the same name over the router\'s plain port. One name (the first ECDSA one) for every request. The new-connection rows are in the next section (h2load).', '');
    s.push(rateTable(r.rates), '');
  }
  if (r.newConnections !== undefined) newConnectionSection(r.newConnections, s);
  const t = r.rateTargets;
  if (t !== undefined && r.rates !== undefined) {
    s.push('p99 ms side by side (new connection: p99 of the request *after* the handshake, then the mean connect + handshake time; the two do not add up to a p99):', '');
    s.push('| req/s | router HTTP | router HTTPS keep-alive | HTTPS / HTTP | router HTTPS new connection: request p99 + handshake mean | nginx HTTP | nginx HTTPS keep-alive | nginx HTTPS new connection: request p99 + handshake mean |', '|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const rate of [...new Set(r.rates.map((x) => x.rate))]) {
      const p = (name: string): number => r.rates!.find((x) => x.rate === rate && x.target === name)?.latency.p99 ?? NaN;
      const fresh = (name: string): string => {
        const n = r.newConnections?.find((x) => x.rate === rate && x.target === name);
        return n === undefined ? f2(p(name)) : `${f2(n.latency.p99)} + ${f2(n.connect.mean)}${n.errors > 0 ? ` (${n.errors} errors)` : ''}`;
      };
      s.push(`| ${rate} | ${f2(p(t.http))} | ${f2(p(t.https))} | ${f2(p(t.https) / p(t.http))} | ${fresh(t.httpsNew)} | ${f2(p(t.nginxHttp))} | ${f2(p(t.nginxHttps))} | ${fresh(t.nginxHttpsNew)} |`);
    }
    s.push('');
  }

  const phases: MachineShare[] = [...(r.handshakes?.cold ?? []), ...(r.handshakes?.warm ?? []), ...(r.rates ?? []), ...(r.newConnections ?? [])].map((x) => x.machine);
  const disturbed = phases.filter((m) => isDisturbed(m)).length;
  s.push('## Aims', '');
  s.push(`${disturbed} of ${phases.length} measured phases shared the machine with other work (⚠ above).`, '');
  s.push('| aim | this run | met |', '|---|---|---|');
  for (const a of aims(r)) s.push(`| ${a.aim} | ${a.result} | ${a.met === null ? '?' : a.met ? 'yes' : '**no**'} |`);
  s.push('');
  if (r.handshakes !== undefined) {
    const warm = r.handshakes.warm;
    const clientCores = warm.reduce((sum, x) => sum + x.clientCores, 0) / Math.max(1, warm.length);
    s.push(`**What limits the handshake figures.** The client runs on the same two cores: its processes used ${f2(clientCores)} cores on average during the warm runs, which neither server could use. Both servers face the same client, so the ratio of handshakes/s is compressed towards 1 when the client is the bottleneck; the CPU per handshake columns are not.`, '');
  }
  s.push(`Router logs: ${r.router.errorLines} error lines, ${r.router.warnLines} warnings (${r.router.logFiles.join(', ')}; kept with --keep-logs).`, '');
  for (const line of r.router.logSamples) s.push(`- \`${line.replace(/`/g, "'")}\``);
  if (r.router.logSamples.length > 0) s.push('');
  return s.join('\n');
}

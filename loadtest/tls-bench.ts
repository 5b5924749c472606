/**
 * The router terminating TLS side by side with nginx terminating TLS for the same
 * certificates and containers, in one run on this machine:
 *
 *   npm run bench:tls [-- --quick] [-- --only handshakes|rates]
 *
 * Issues two sets of certificates for 1000 SNI names each (ECDSA P-256, RSA 2048; test CAs),
 * registers one app per name through the control plane (domain + certificate events), gives
 * nginx the same certificates as 2000 `server` blocks, then (loadtest/README.md):
 *   handshakes  full handshakes/s over the names, cold and warm, TLS 1.3 and 1.2, router / nginx,
 *               from separate client processes; then where the router's CPU goes (a V8 profile
 *               of its processes, and perf on both servers when perf can sample here);
 *   rates       HTTPS at 100…1000 req/s, keep-alive (this process's paced client) and a new
 *               connection per request (h2load, a C client: `apt-get install nghttp2-client`),
 *               router and nginx, and plain HTTP through both at the same rates.
 * Progress goes to stderr; the Markdown report to stdout and loadtest/reports/tls-<time>.md,
 * raw figures to loadtest/reports/tls-<time>.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Dispatcher } from 'undici';
import { writeReport } from './report-files.js';
import { startEmbeddedRedis } from '../scripts/embedded-redis.js';
import type { RateStack } from './router-bench/http-parts.js';
import { pacedPool, type PacedTarget } from './router-bench/load.js';
import { describeMachine, Quiet } from './router-bench/machine.js';
import { backendConfig, findNginx, startNginx } from './router-bench/nginx.js';
import { container, Platform } from './router-bench/platform.js';
import { childPids, freePorts, HOST, register, routerLogCounts, snapshotRouterCode, startControlPlane, startRouter, stopAll, type RouterProcess } from './router-bench/processes.js';
import { Progress } from './router-bench/progress.js';
import { makeCertSets, writeCertFiles, type CertSet } from './tls-bench/certificates.js';
import { HandshakeFleet, type JobSpec } from './tls-bench/handshake-fleet.js';
import { handshakes, warmUp, type HandshakeTarget } from './tls-bench/handshakes.js';
import { tlsProxyConfig } from './tls-bench/nginx-tls.js';
import { parseArgs, plannedSeconds, type Part } from './tls-bench/options.js';
import { requireH2load } from './tls-bench/h2load.js';
import { perfAvailable, perfWindow, type PerfSummary } from './tls-bench/perf.js';
import { closeSessions, openSessions, profileWindow, type ProfileWindow } from './tls-bench/profile.js';
import { tlsRateLadder, type LadderTarget } from './tls-bench/rate-ladder.js';
import { renderTlsReport, type TlsResults } from './tls-bench/report.js';
import { uploadApps } from './tls-bench/upload.js';

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const has = (p: Part): boolean => opts.parts.includes(p);
  // Before anything is started or issued: a missing generator is found at once.
  const h2loadVersion = has('rates') ? await requireH2load() : null;
  const progress = new Progress(30 + opts.names / 40 + opts.parts.reduce((s, p) => s + plannedSeconds(opts, p), 0));
  const startedAt = new Date();
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'tls-bench-'));
  let failed = true;
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\ninterrupted: stopping every child (Ctrl-C again to quit now)\n');
    void stopAll().finally(() => {
      process.stderr.write(`logs kept in ${runDir}\n`);
      process.exit(130);
    });
  });

  const pools = new Map<string, Dispatcher>();
  let platform: Platform | null = null;
  const quiet = new Quiet(opts.quick ? 30_000 : 300_000, (text) => progress.note(text));
  try {
    progress.step(`issuing ${opts.names} ECDSA and ${opts.names} RSA certificates (files in ${runDir})`, 3 + opts.names / 200);
    const code = await snapshotRouterCode(runDir);
    const nginxBin = await findNginx();
    const machine = await describeMachine(nginxBin.version);
    const certStarted = performance.now();
    const sets: CertSet[] = await makeCertSets(opts.names, (t) => progress.note(t));
    const certSeconds = (performance.now() - certStarted) / 1000;
    const certFiles = await writeCertFiles(path.join(runDir, 'certs'), sets);
    const ca = sets.map((s) => s.caPem);

    progress.step('starting redis, control plane, nginx (backends and TLS proxy)', 5);
    const redis = await startEmbeddedRedis();
    register({ name: 'redis-server', stop: () => redis.stop(), kill: () => {
      try {
        process.kill(redis.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    } });
    // A fresh key per run: the control plane seals every private key with it, the router opens them.
    const keyEnv = { KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') };
    const cp = await startControlPlane(redis.url, path.join(runDir, 'control-plane.log'), keyEnv);
    platform = new Platform(cp.port);

    const [b1, b2, nginxHttp, nginxHttps] = await freePorts(4);
    const backends = [container('b1', b1!), container('b2', b2!)];
    const backendNginx = await startNginx('backends', nginxBin.binary, runDir, (dir) => backendConfig(dir, backends), backends.map((b) => b.port));
    const workers = process.env['ROUTER_WORKERS'] ?? '2';
    const nginxStarted = performance.now();
    const proxy = await startNginx('tls', nginxBin.binary, runDir, (dir) => tlsProxyConfig(dir, { http: nginxHttp!, https: nginxHttps! }, backends.map((b) => b.port), certFiles, Number(workers) || 2), [nginxHttp!, nginxHttps!]);
    const nginxStartSeconds = (performance.now() - nginxStarted) / 1000;

    progress.step(`${2 * opts.names} apps: deploy, domain and certificate events`, opts.names / 150);
    const upload = await uploadApps(platform, sets, backends, 32, (t) => progress.note(t));
    if (upload.failures > 0) throw new Error(`${upload.failures} apps could not be set up; first failure: ${upload.firstFailure}`);

    // Every name of both sets fits each worker's certificate cache, with room to spare.
    const routerEnv = { ...keyEnv, CERT_CACHE_MAX: String(Math.max(4096, 4 * opts.names)) };
    progress.step('starting the router', 3);
    const router = await startRouter(code, redis.url, path.join(runDir, 'router.log'), routerEnv);
    const routerPids = async (r: RouterProcess): Promise<number[]> => [r.child.pid, ...(await r.workerPids()).values()];
    const nginxPids = async (): Promise<number[]> => [proxy.child.pid, ...(await childPids(proxy.child.pid))];
    const cpuStack: Pick<RateStack, 'proxyPids' | 'backendPids'> = {
      proxyPids: (target) => (target.startsWith('router') ? routerPids(router) : target.startsWith('nginx') ? nginxPids() : Promise.resolve([])),
      backendPids: async () => [backendNginx.child.pid, ...(await childPids(backendNginx.child.pid))],
    };
    const lookupsOf = (r: RouterProcess) => async (): Promise<number> => {
      const text = await fetch(`http://${HOST}:${r.adminPort}/metrics`).then((x) => x.text());
      let sum = 0;
      for (const line of text.split('\n')) if (line.startsWith('router_cert_lookups_total')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      return sum;
    };

    const results: TlsResults = {
      command: `${process.env['ROUTER_WORKERS'] ? `ROUTER_WORKERS=${workers} ` : ''}npm run bench:tls${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      startedAt: startedAt.toISOString(),
      durationSeconds: 0,
      machine,
      setup: [
        `router code: commit ${code.commit}${code.dirty.length > 0 ? ` with uncommitted changes to ${code.dirty.join(', ')}` : ''}; build fingerprint ${code.fingerprint}`,
        `router: ROUTER_WORKERS=${workers} (node:cluster, round-robin accept in the primary), HTTPS listener (TLS 1.2 and 1.3, ALPN http/1.1), certificates by SNI from Redis, KEY_ENCRYPTION_KEY set, CERT_CACHE_MAX=${routerEnv.CERT_CACHE_MAX} per worker (every name fits); access log to a file`,
        `nginx ${nginxBin.version}: ${workers} workers, one \`server\` block per name (${2 * opts.names}) with its \`ssl_certificate\`, \`ssl_protocols TLSv1.2 TLSv1.3\`, other TLS settings at nginx's defaults (session tickets on, no session cache), \`listen … ssl reuseport\`, the same \`upstream\` as router-bench's nginx (keepalive 64, HTTP/1.1, X-Forwarded-*, request id, access log through a 64 KB buffer); a plain-HTTP listener too`,
        `containers: one nginx (1 worker) answering \`200 "<id>\\n"\` on 2 loopback ports; every app runs on both`,
        `certificates: ${opts.names} names per set, \`ec-0001.tls-bench.test\`… (ECDSA P-256) and \`rsa-0001.tls-bench.test\`… (RSA 2048), one app each; one CA per set of the same key type; one key pair per set shared by its certificates (a handshake costs the same whichever key; spares minutes of RSA key generation); each certificate its own (SAN, serial, signature); chain = leaf + CA`,
        `handshake client: ${opts.clients} separate Node processes (handshake-client.ts), ${opts.concurrency} handshakes in flight in all, Node ${process.version}'s TLS client with its default ciphers and groups, the chain verified; the same client for both servers`,
        'rates client, plain HTTP and keep-alive HTTPS: this process, router-bench\'s paced undici client (128 connections per target)',
        ...(h2loadVersion === null ? [] : [`rates client, a new connection per request: h2load ${h2loadVersion} (nghttp2-client; C, OpenSSL, one thread), a child process: a fixed number of connections every period, one HTTP/1.1 request on each, full handshakes (it keeps no session: the router's resumption counter is checked per run), SNI and Host = the name, TLS at h2load's defaults`]),
      ],
      prep: { namesPerSet: opts.names, certSeconds, upload, nginxStartSeconds },
      router: { workerDeaths: 0, errorLines: 0, warnLines: 0, logFiles: [], logSamples: [] },
    };
    const stopRouter = async (r: RouterProcess): Promise<void> => {
      results.router.workerDeaths += await r.workerDeaths();
      const counts = await routerLogCounts(r);
      results.router.errorLines += counts.errorLines;
      results.router.warnLines += counts.warnLines;
      results.router.logSamples.push(...counts.samples);
      results.router.logFiles.push(r.logFile);
      await r.child.stop('SIGTERM', 15_000);
    };

    if (has('handshakes')) {
      const fleet = await HandshakeFleet.start(opts.clients, path.join(runDir, 'handshake-clients.log'));
      const targets: HandshakeTarget[] = [{ name: 'router', port: router.httpsPort }, { name: 'nginx', port: nginxHttps! }];
      results.handshakes = await handshakes(
        { fleet, host: HOST, ca, sets, targets, quiet, progress, cpu: cpuStack, routerLookups: lookupsOf(router) },
        { versions: opts.versions, seconds: opts.seconds, rounds: opts.rounds, concurrency: opts.concurrency, maxWarmPasses: 20 },
      );
      if (opts.profile) {
        const version = opts.versions[0]!;
        const spec = (port: number): JobSpec => ({ host: HOST, ca, concurrency: opts.concurrency, port, mode: 'duration', seconds: opts.profileSeconds, version });
        // perf first, on the measured router and nginx as they are (warm, no inspector).
        if (opts.perf && (await perfAvailable())) {
          const perf: PerfSummary[] = [];
          for (const set of sets) {
            for (const t of targets) {
              progress.step(`where the CPU goes: perf on ${t.name}, ${set.label}`, opts.profileSeconds + 2);
              await quiet.settle();
              const pids = t.name === 'router' ? await routerPids(router) : await nginxPids();
              const summary = await perfWindow({ target: t.name, keyType: set.keyType, version }, pids, runDir, () => fleet.run(t.name, `${set.label}, perf`, spec(t.port), set.names));
              if (summary !== null) perf.push(summary);
            }
          }
          results.perf = perf;
        } else {
          results.perf = null;
          results.perfNote = opts.perf ? '`perf stat` failed: perf not installed, or kernel.perf_event_paranoid forbids it' : '--no-perf';
        }
        progress.step('where the CPU goes: a router with an inspector, V8 profiles', 8 + 2 * opts.profileSeconds);
        const profiled = await startRouter(code, redis.url, path.join(runDir, 'router-profiled.log'), routerEnv, [`--inspect=${HOST}:0`]);
        const sessions = await openSessions(profiled, Number(workers) || 2);
        try {
          const windows: ProfileWindow[] = [];
          for (const set of sets) {
            await warmUp(fleet, profiled.httpsPort, set, { host: HOST, ca, concurrency: opts.concurrency, version }, lookupsOf(profiled), 20, progress);
            progress.step(`where the CPU goes: V8 profile, ${set.label}`, opts.profileSeconds + 1);
            await quiet.settle();
            windows.push(await profileWindow(sessions, fleet, set, spec(profiled.httpsPort)));
          }
          results.profiles = windows;
        } finally {
          closeSessions(sessions);
          await stopRouter(profiled);
        }
      }
      await fleet.stop();
    }

    if (has('rates')) {
      const set = sets[0]!;
      const name = set.names[0]!;
      // One client context, as a real client keeps: with `ca` alone undici would build one per connection.
      const secureContext = createSecureContext({ ca });
      const tls = { secureContext, servername: name };
      const paced: Array<PacedTarget & { tls?: typeof tls }> = [
        { name: 'router http', origin: `http://${HOST}:${router.port}`, host: name },
        { name: 'router https', origin: `https://${HOST}:${router.httpsPort}`, host: name, tls },
        { name: 'nginx http', origin: `http://${HOST}:${nginxHttp}`, host: name },
        { name: 'nginx https', origin: `https://${HOST}:${nginxHttps}`, host: name, tls },
      ];
      for (const t of paced) pools.set(t.name, pacedPool(t.origin, t.tls));
      const stack: RateStack = { targets: paced, pools, progress, quiet, ...cpuStack };
      const at = (n: string): LadderTarget => ({ kind: 'paced', target: paced.find((t) => t.name === n)! });
      const ladder: LadderTarget[] = [
        at('router http'), at('router https'),
        { kind: 'new connections', target: { name: 'router https, new connection', host: name, port: router.httpsPort, routerAdminPort: router.adminPort } },
        at('nginx http'), at('nginx https'),
        { kind: 'new connections', target: { name: 'nginx https, new connection', host: name, port: nginxHttps! } },
      ];
      results.rateTargets = { http: 'router http', https: 'router https', httpsNew: 'router https, new connection', nginxHttp: 'nginx http', nginxHttps: 'nginx https', nginxHttpsNew: 'nginx https, new connection' };
      // A keep-alive phase that finds its connections closed (idle past the server's keep-alive timeout) re-opens
      // them in its lead-in, not while measured.
      const ran = await tlsRateLadder(stack, ladder, { rates: opts.rates, seconds: opts.rateSeconds, warmSeconds: opts.warmSeconds, phaseWarmSeconds: opts.quick ? 1 : 2, dir: runDir });
      results.rates = ran.rates;
      results.newConnections = ran.newConnections;
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
    }
    await stopRouter(router);

    results.durationSeconds = progress.elapsed();
    results.setup.push(quiet.describe());
    const md = renderTlsReport(results);
    process.stdout.write(`${md}\n`);
    const written = await writeReport('tls', startedAt, md, { options: opts, ...results });
    process.stderr.write(`written: ${written} and .json\n`);
    failed = false;
  } finally {
    await Promise.all([...pools.values()].map((p) => p.close().catch(() => undefined)));
    await platform?.close().catch(() => undefined);
    await stopAll();
    if (failed || opts.keepLogs) process.stderr.write(`logs kept in ${runDir}\n`);
    else await rm(runDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

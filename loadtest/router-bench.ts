/**
 * The router side by side with the direct backend and with nginx proxying the same backends,
 * after Scalingo's experiments with their router, all in one run on this machine:
 *
 *   npm run bench:router [-- --quick] [-- --only http|reload|throughput|propagation|websocket|memory]
 *
 * Starts a throwaway redis-server, the control plane and the router (ROUTER_WORKERS=2 unless
 * set) as child processes logging to files, an nginx serving `200 "<id>\n"` on four loopback
 * ports as the app's containers, and a second nginx proxying to them. Then, each part bounded
 * in time (see loadtest/README.md):
 *   http         constant rate 100…2000 req/s, latency from scheduled send times;
 *   reload       1000 req/s while the app is scaled every 20 s and every 1 s (nginx: reloads);
 *   throughput   closed loop, 50 keep-alive connections (wrk), router / nginx, and the floor of
 *                any Node proxy here (router-bench/node-floor.ts); then a new connection per request;
 *   propagation  control plane's 200 → first answer from the new container: closed-loop pollers
 *                (the machine saturated), then probes sent from the 200, on an otherwise idle
 *                router and with 1000 req/s of another app's traffic;
 *   websocket    1000 WebSockets through 100 scale events: none may drop;
 *   memory       RSS per worker with 100 000 apps and the route cache at its bound.
 * Progress goes to stderr; the Markdown report to stdout and loadtest/reports/router-<time>.md,
 * raw figures to loadtest/reports/router-<time>.json. ROUTER_NODE_ARGS passes flags to the
 * router's node (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": the report then adds the profile);
 * ROUTER_DIST measures another build (a saved copy of dist/) instead of the checkout's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Pool } from 'undici';
import { writeReport } from './report-files.js';
import { startEmbeddedRedis } from '../scripts/embedded-redis.js';
import { profileDirFromArgs, summarizeProfiles } from './router-bench/cpu-profile.js';
import { BENCH_APP, BENCH_HOST, FLOOR, rateLadder, throughput, topology, type HttpStack } from './router-bench/http-parts.js';
import { pacedPool, type PacedTarget } from './router-bench/load.js';
import { describeMachine, measured, Quiet } from './router-bench/machine.js';
import { memory } from './router-bench/memory.js';
import { backendConfig, findNginx, proxyConfig, startNginx, type Nginx } from './router-bench/nginx.js';
import { container, Platform } from './router-bench/platform.js';
import { childPids, freePorts, HOST, register, routerLogCounts, snapshotRouterCode, startControlPlane, startNodeFloor, startRouter, stopAll, type RouterProcess } from './router-bench/processes.js';
import { Progress } from './router-bench/progress.js';
import { propagation } from './router-bench/propagation.js';
import { probedPropagation } from './router-bench/propagation-probes.js';
import { renderReport, type Results } from './router-bench/report.js';
import { websocketSurvival } from './router-bench/websocket.js';

const PARTS = ['http', 'reload', 'throughput', 'propagation', 'websocket', 'memory'] as const;
/** Other traffic during the second probed propagation: the topology part's rate. */
const PROBE_BACKGROUND_RATE = 1000;
type Part = (typeof PARTS)[number];

interface Options {
  parts: Part[];
  quick: boolean;
  rates: number[];
  seconds: number;
  warmSeconds: number;
  topologyRate: number;
  topologySeconds: number;
  routerEveryMs: number[];
  nginxEveryMs: number[];
  connections: number;
  throughputSeconds: number;
  rounds: number;
  changes: number;
  websockets: number;
  wsEvents: number;
  apps: number;
  cacheMax: number;
  keepLogs: boolean;
}

const USAGE = `usage: router-bench [--quick] [--only part[,part]] [--rates 100,250,...] [--seconds N] [--topology-seconds N]
  [--throughput-seconds N] [--rounds N] [--changes N] [--websockets N] [--ws-events N] [--apps N] [--cache-max N] [--keep-logs]
parts: ${PARTS.join(', ')}`;

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const envCacheMax = Number(process.env['ROUTE_CACHE_MAX'] ?? NaN);
  const o: Options = quick
    ? {
        parts: [...PARTS], quick, rates: [250, 1000, 2000], seconds: 2, warmSeconds: 1, topologyRate: 1000, topologySeconds: 6,
        routerEveryMs: [3000, 1000], nginxEveryMs: [1000], connections: 50, throughputSeconds: 3, rounds: 1, changes: 20,
        websockets: 200, wsEvents: 20, apps: 10_000, cacheMax: Number.isFinite(envCacheMax) ? envCacheMax : 2_000, keepLogs: false,
      }
    : {
        parts: [...PARTS], quick, rates: [100, 250, 500, 750, 1000, 2000], seconds: 10, warmSeconds: 3, topologyRate: 1000, topologySeconds: 40,
        routerEveryMs: [20_000, 1000], nginxEveryMs: [1000], connections: 50, throughputSeconds: 10, rounds: 3, changes: 100,
        websockets: 1000, wsEvents: 100, apps: 100_000, cacheMax: Number.isFinite(envCacheMax) ? envCacheMax : 10_000, keepLogs: false,
      };
  const numbers = (flag: string, raw: string | undefined): number[] => {
    const values = (raw ?? '').split(',').map(Number);
    if (raw === undefined || !values.every((v) => Number.isFinite(v) && v > 0)) throw new Error(`${flag} needs positive numbers\n${USAGE}`);
    return values;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--quick') continue;
    if (flag === '--keep-logs') {
      o.keepLogs = true;
      continue;
    }
    const raw = argv[++i];
    const one = (): number => {
      const v = numbers(flag, raw);
      if (v.length !== 1) throw new Error(`${flag} takes one number\n${USAGE}`);
      return v[0]!;
    };
    switch (flag) {
      case '--only': {
        const parts = (raw ?? '').split(',');
        const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
        if (bad.length > 0 || raw === undefined) throw new Error(`unknown part ${bad.join(',') || '(none)'}\n${USAGE}`);
        o.parts = parts as Part[];
        break;
      }
      case '--rates': o.rates = numbers(flag, raw); break;
      case '--seconds': o.seconds = one(); break;
      case '--topology-seconds': o.topologySeconds = one(); break;
      case '--throughput-seconds': o.throughputSeconds = one(); break;
      case '--rounds': o.rounds = one(); break;
      case '--changes': o.changes = one(); break;
      case '--websockets': o.websockets = one(); break;
      case '--ws-events': o.wsEvents = one(); break;
      case '--apps': o.apps = one(); break;
      case '--cache-max': o.cacheMax = one(); break;
      default: throw new Error(`unknown flag ${flag}\n${USAGE}`);
    }
  }
  return o;
}

/** Rough seconds per part, for the time-left estimate only. */
function plannedSeconds(o: Options, part: Part): number {
  switch (part) {
    case 'http': return 3 * o.warmSeconds + o.rates.length * 3 * (o.seconds + (o.quick ? 1.5 : 3));
    case 'reload': return (o.routerEveryMs.length + o.nginxEveryMs.length) * (o.topologySeconds + (o.quick ? 1.5 : 3)) + 3;
    case 'throughput': return 4 * (o.quick ? 1 : 3) + o.rounds * 4 * (o.throughputSeconds + 1) + 4 * ((o.quick ? 2 : 5) + 1);
    case 'propagation': return 6 + o.changes * 0.16;
    case 'websocket': return 5 + o.wsEvents * 0.06 + o.websockets / 200;
    case 'memory': return 8 + o.apps / 2500 + ((o.quick ? 2 : 4) * Math.min(o.apps, 3 * o.cacheMax)) / 3000 + (o.quick ? 6 : 10);
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const has = (p: Part): boolean => opts.parts.includes(p);
  const needsProxy = has('http') || has('reload') || has('throughput');
  const needsRouter = needsProxy || has('propagation') || has('websocket');
  const progress = new Progress(10 + opts.parts.reduce((s, p) => s + plannedSeconds(opts, p), 0));
  const startedAt = new Date();
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'router-bench-'));
  const nodeArgs = process.env['ROUTER_NODE_ARGS'] ?? '';
  const profileDir = profileDirFromArgs(nodeArgs);
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

  const pools = new Map<string, Pool>();
  let platform: Platform | null = null;
  // Up to 5 minutes (30 s with --quick) of waiting for, and repeating after, other people's work.
  const quiet = new Quiet(opts.quick ? 30_000 : 300_000, (text) => progress.note(text));
  try {
    progress.step(`starting redis, control plane, nginx, router (files in ${runDir})`, 10);
    const code = await snapshotRouterCode(runDir);
    const nginxBin = await findNginx();
    const machine = await describeMachine(nginxBin.version);
    const redis = await startEmbeddedRedis();
    let stoppingRedis = false;
    // Every later failure would otherwise read as the control plane's or the router's.
    void redis.exited.then(() => {
      if (!stoppingRedis) process.stderr.write(`\nredis-server (pid ${redis.pid}) exited unexpectedly at ${new Date().toISOString()}\n`);
    });
    register({ name: 'redis-server', stop: () => {
      stoppingRedis = true;
      return redis.stop();
    }, kill: () => {
      try {
        process.kill(redis.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    } });
    const cp = await startControlPlane(redis.url, path.join(runDir, 'control-plane.log'));
    platform = new Platform(cp.port);

    const ports = await freePorts(5);
    const backends = ports.slice(0, 4).map((p, i) => container(`b${i + 1}`, p));
    const proxyPort = ports[4]!;
    const backendNginx = await startNginx('backends', nginxBin.binary, runDir, (dir) => backendConfig(dir, backends), backends.map((b) => b.port));
    let proxy: Nginx | null = null;
    if (needsProxy) proxy = await startNginx('proxy', nginxBin.binary, runDir, (dir) => proxyConfig(dir, proxyPort, backends.map((b) => b.port)), [proxyPort]);

    const workers = process.env['ROUTER_WORKERS'] ?? '2';
    const setup = [
      `router code: commit ${code.commit}${code.dirty.length > 0 ? ` with uncommitted changes to ${code.dirty.join(', ')}` : ''}; build fingerprint ${code.fingerprint} (dist/ copied at the start: a rebuild during the run changes nothing)`,
      `router: \`node dist/data-plane/src/main.js\` (from that copy), ROUTER_WORKERS=${workers} (node:cluster, round-robin accept), access log on its stdout to a file${nodeArgs ? `, node ${nodeArgs}` : ''}`,
      `containers: one nginx (1 worker, access_log off) answering \`200 "<id>\\n"\` on ${backends.length} loopback ports; the app \`${BENCH_APP}\` (Host \`${BENCH_HOST}\`) runs on all of them`,
      'nginx proxy: 2 workers, `upstream` of the same ports (round robin), `keepalive 64`, HTTP/1.1 with `Connection ""`, X-Forwarded-For/Proto and X-Request-Id set, access log to a file (`buffer=64k flush=1s`)',
      'direct: the first container port, no proxy',
      '"node floor" (throughput part only): loadtest/router-bench/node-floor.ts, node:http + an undici Pool per container and nothing else, in as many cluster workers as the router — what any Node proxy costs here',
      'client: this process, undici Pool of 128 keep-alive connections per target (paced), wrk for maximum throughput; redis-server and the control plane as children, logs in a temporary directory',
    ];
    const results: Results = {
      command: `${nodeArgs ? `ROUTER_NODE_ARGS="${nodeArgs}" ` : ''}${process.env['ROUTER_WORKERS'] ? `ROUTER_WORKERS=${workers} ` : ''}npm run bench:router${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      startedAt: startedAt.toISOString(),
      durationSeconds: 0,
      machine,
      setup,
      router: { workerDeaths: 0, errorLines: 0, warnLines: 0, logFiles: [], logSamples: [] },
    };

    let router: RouterProcess | null = null;
    const profilePids = new Set<number>();
    const stopRouter = async (r: RouterProcess, profiled: boolean): Promise<void> => {
      if (profiled) {
        profilePids.add(r.child.pid);
        for (const pid of (await r.workerPids()).values()) profilePids.add(pid);
      }
      results.router.workerDeaths += await r.workerDeaths();
      const counts = await routerLogCounts(r);
      results.router.errorLines += counts.errorLines;
      results.router.warnLines += counts.warnLines;
      results.router.logSamples.push(...counts.samples);
      results.router.logFiles.push(r.logFile);
      // The primary exits once its workers drained: with --cpu-prof that is when the profiles are written.
      await r.child.stop('SIGTERM', 15_000);
    };

    if (needsRouter) {
      router = await startRouter(code, redis.url, path.join(runDir, 'router.log'), {});
      await platform.deploy(BENCH_APP, backends);
      const targets: PacedTarget[] = [
        { name: 'direct', origin: `http://${HOST}:${backends[0]!.port}`, host: BENCH_HOST },
        ...(proxy !== null ? [{ name: 'nginx', origin: `http://${HOST}:${proxyPort}`, host: BENCH_HOST }] : []),
        { name: 'router', origin: `http://${HOST}:${router.port}`, host: BENCH_HOST },
      ];
      for (const t of targets) pools.set(t.name, pacedPool(t.origin));
      const routerProcess = router;
      let floorPids = async (): Promise<number[]> => [];
      const stack: HttpStack = {
        platform, proxy: proxy!, proxyPort, backends, targets, pools, progress, quiet,
        async proxyPids(target) {
          if (target === FLOOR) return floorPids();
          if (target === 'router') return [routerProcess.child.pid, ...(await routerProcess.workerPids()).values()];
          if (target === 'nginx' && proxy !== null) return [proxy.child.pid, ...(await childPids(proxy.child.pid))];
          return [];
        },
        backendPids: async () => [backendNginx.child.pid, ...(await childPids(backendNginx.child.pid))],
      };

      const phaseWarm = opts.quick ? 0.5 : 2;
      if (has('http')) results.rates = await rateLadder(stack, opts.rates, opts.seconds, opts.warmSeconds, phaseWarm);
      if (has('reload')) results.topology = await topology(stack, opts.topologyRate, opts.topologySeconds, opts.routerEveryMs, opts.nginxEveryMs, phaseWarm);
      if (has('throughput')) {
        const floor = await startNodeFloor(runDir, backends.map((b) => b.port), Number(workers) || 2);
        floorPids = async () => [floor.child.pid, ...(await childPids(floor.child.pid))];
        const floorTarget: PacedTarget = { name: FLOOR, origin: `http://${HOST}:${floor.port}`, host: BENCH_HOST };
        const all = [...targets.filter((t) => t.name !== 'router'), floorTarget, ...targets.filter((t) => t.name === 'router')];
        results.throughput = await throughput(stack, all, opts.connections, opts.throughputSeconds, opts.rounds, opts.quick ? 1 : 3, opts.quick ? 2 : 5);
        await floor.child.stop();
      }
      if (has('propagation')) {
        progress.step(`propagation: ${opts.changes} changes`, plannedSeconds(opts, 'propagation'));
        const p = platform;
        const port = router.port;
        await quiet.settle();
        results.propagation = await measured(() => propagation(p, port, backends[0]!, backends[1]!, opts.changes, progress));
        await quiet.settle();
        const idle = await measured(() => probedPropagation(p, port, backends[0]!, backends[1]!, opts.changes, progress));
        await quiet.settle();
        const background = { pool: pools.get('router')!, host: BENCH_HOST, rate: PROBE_BACKGROUND_RATE };
        const loaded = await measured(() => probedPropagation(p, port, backends[0]!, backends[1]!, opts.changes, progress, background));
        results.propagationProbes = [idle, loaded];
      }
      if (has('websocket')) {
        progress.step(`websocket: ${opts.websockets} sockets through ${opts.wsEvents} scale events`, plannedSeconds(opts, 'websocket'));
        const p = platform;
        const port = router.port;
        await quiet.settle();
        results.websocket = await measured(() => websocketSurvival(p, port, opts.websockets, opts.wsEvents, progress));
      }
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
      await stopRouter(router, true);
    }

    if (has('memory')) {
      progress.step(`memory: fresh router, ${opts.apps} apps, ROUTE_CACHE_MAX=${opts.cacheMax}`, plannedSeconds(opts, 'memory'));
      // A fresh router: the baseline must not carry the heap the load parts grew.
      // An inspector on a random loopback port per process: the only way to force a full GC in
      // the workers, so that retained memory can be told from garbage V8 has not collected yet.
      const memRouter = await startRouter(code, redis.url, path.join(runDir, 'router-memory.log'), { ROUTE_CACHE_MAX: String(opts.cacheMax) }, [`--inspect=${HOST}:0`]);
      const p = platform;
      await quiet.settle();
      results.memory = await measured(() => memory(p, memRouter, redis.url, backends[0]!.port, opts.apps, opts.cacheMax, opts.quick ? 2 : 4, progress));
      // Not profiled with the rest: its CPU is cache misses, not the proxying the profile is about.
      await stopRouter(memRouter, false);
    }

    if (profileDir !== null) results.profile = await summarizeProfiles(profileDir, profilePids);
    results.durationSeconds = progress.elapsed();
    results.setup.push(quiet.describe());
    const md = renderReport(results);
    process.stdout.write(`${md}\n`);
    const written = await writeReport('router', startedAt, md, { options: opts, ...results });
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

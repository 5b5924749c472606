/**
 * What a Node proxy can do on this machine, layer by layer, beside nginx proxying the same
 * backends: the reasoning behind the router's HTTP/1.1 fast path, and the ceiling the
 * throughput aim (≥ 0.5× nginx) meets.
 *
 *   npm run bench:floors [-- --seconds 10] [--rounds 3]
 *
 * Targets, interleaved round by round, each closed loop with `wrk -t 1 -c 50` (as the
 * router benchmark's throughput part), all in 2 workers over one nginx answering
 * `200 "<id>\n"` on four ports:
 *   nginx            nginx 2 workers, keep-alive upstreams (router-bench/nginx.ts);
 *   node floor       node:http + undici Pool (router-bench/node-floor.ts);
 *   llhttp + undici  net.Server + Node's llhttp binding + undici (router-bench/llhttp-floor.ts);
 *   llhttp raw       the same without undici: llhttp both ways.
 * Reported: requests/s per round, the median, CPU µs per request of the proxy's processes
 * (/proc, median round) and each median over nginx's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeReport } from './report-files.js';
import { hasWrk, wrk, type PacedTarget } from './router-bench/load.js';
import { describeMachine } from './router-bench/machine.js';
import { backendConfig, findNginx, proxyConfig, startNginx } from './router-bench/nginx.js';
import { childPids, cpuMs, freePorts, HOST, startFloor, stopAll, type Child } from './router-bench/processes.js';

interface Options {
  seconds: number;
  rounds: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 10, rounds: 3 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${argv[i]} needs a positive integer`);
    if (argv[i] === '--seconds') o.seconds = value;
    else if (argv[i] === '--rounds') o.rounds = value;
    else throw new Error(`usage: floors-bench [--seconds N] [--rounds N] (got ${argv[i]})`);
  }
  return o;
}

interface Target {
  name: string;
  port: number;
  pids: () => Promise<number[]>;
}

interface Round {
  target: string;
  requestsPerSecond: number;
  p99: number;
  errors: number;
  cpuUsPerRequest: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function treeOf(child: Child): () => Promise<number[]> {
  return async () => [child.pid, ...(await childPids(child.pid))];
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!(await hasWrk())) throw new Error('wrk is not installed: `apt-get install -y wrk`');
  const startedAt = new Date();
  const nginx = await findNginx();
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'floors-bench-'));
  try {
    const [b1, b2, b3, b4, proxyPort] = await freePorts(5);
    const backends = [b1!, b2!, b3!, b4!].map((port, i) => ({ id: `c${i + 1}`, port }));
    const ports = backends.map((b) => b.port);
    await startNginx('backends', nginx.binary, runDir, (dir) => backendConfig(dir, backends), ports);
    const proxy = await startNginx('proxy', nginx.binary, runDir, (dir) => proxyConfig(dir, proxyPort!, ports), [proxyPort!]);
    const floors = [
      await startFloor('node floor', 'node-floor.js', {}, runDir, ports, 2),
      await startFloor('llhttp + undici', 'llhttp-floor.js', { FLOOR_CLIENT: 'undici' }, runDir, ports, 2),
      await startFloor('llhttp raw', 'llhttp-floor.js', { FLOOR_CLIENT: 'raw' }, runDir, ports, 2),
    ];
    const targets: Target[] = [
      { name: 'nginx', port: proxyPort!, pids: treeOf(proxy.child) },
      { name: 'node floor', port: floors[0]!.port, pids: treeOf(floors[0]!.child) },
      { name: 'llhttp + undici', port: floors[1]!.port, pids: treeOf(floors[1]!.child) },
      { name: 'llhttp raw', port: floors[2]!.port, pids: treeOf(floors[2]!.child) },
    ];
    const paced = (t: Target): PacedTarget => ({ name: t.name, origin: `http://${HOST}:${t.port}`, host: 'bench.localhost' });
    for (const t of targets) await wrk(paced(t), 50, 3);
    const rounds: Round[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      for (const t of targets) {
        const pids = await t.pids();
        const before = await cpuMs(pids);
        const r = await wrk(paced(t), 50, o.seconds);
        const after = await cpuMs(pids);
        const cpu = after.user + after.sys - before.user - before.sys;
        rounds.push({ target: t.name, requestsPerSecond: r.requestsPerSecond, p99: r.latency.p99, errors: r.errors, cpuUsPerRequest: (cpu * 1000) / r.requests });
        process.stderr.write(`round ${round} ${t.name}: ${Math.round(r.requestsPerSecond)} req/s\n`);
      }
    }
    const rows = targets.map((t) => {
      const mine = rounds.filter((r) => r.target === t.name);
      return { name: t.name, rounds: mine, median: median(mine.map((r) => r.requestsPerSecond)), cpu: median(mine.map((r) => r.cpuUsPerRequest)) };
    });
    const nginxMedian = rows[0]!.median;
    const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').replace(/,/g, ' ');
    const report = [
      `# Floors of a Node proxy, ${startedAt.toISOString()}`,
      '',
      '```sh',
      `npm run bench:floors${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      '```',
      '',
      `- machine: ${await describeMachine(nginx.version)}`,
      `- every target in 2 workers over one nginx backend (4 ports); \`wrk -t 1 -c 50\`, ${o.seconds} s per round, ${o.rounds} rounds interleaved`,
      '',
      '| target | req/s each round | median req/s | CPU µs/request (median round) | p99 ms each round | errors | / nginx |',
      '|---|---|---:|---:|---|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.rounds.map((x) => fmt(x.requestsPerSecond)).join(', ')} | **${fmt(r.median)}** | ${r.cpu.toFixed(0)} | ${r.rounds.map((x) => x.p99.toFixed(2)).join(', ')} | ${r.rounds.reduce((s, x) => s + x.errors, 0)} | ${(r.median / nginxMedian).toFixed(2)} |`,
      ),
      '',
    ].join('\n');
    process.stdout.write(report);
    const written = await writeReport('floors', startedAt, report, { options: o, rows });
    process.stderr.write(`written: ${written} and .json\n`);
  } finally {
    await stopAll();
    await rm(runDir, { recursive: true, force: true });
  }
}

main().catch(async (err: unknown) => {
  process.stderr.write(`floors-bench: ${err instanceof Error ? err.message : String(err)}\n`);
  await stopAll();
  process.exit(1);
});

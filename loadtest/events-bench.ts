/**
 * Events applied per second through the REST API, and their latency.
 *
 *   npm run bench:events [-- --seconds 10 --rate 1000,2000 --concurrency 32 --apps 1000]
 *
 * Starts a throwaway redis-server and the control plane as a separate process (as in
 * production), then runs, each bounded in time:
 *   0. baseline: `GET /healthz` closed loop, the same server doing no work (comparison);
 *   1. closed loop: `concurrency` clients send deploy/scale events back to back → max events/s;
 *   2. constant rate: for each rate, that many events/s for `seconds`, latency measured from each event's
 *      *scheduled* send time, so a stall is charged to every event it delays (no
 *      coordinated omission).
 * Events rotate over `apps` apps with increasing seq, 3 containers and 2 custom domains each,
 * so every event rewrites 3 hostname records and publishes one invalidation.
 * Prints a Markdown table and writes loadtest/reports/events-<timestamp>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { startEmbeddedRedis } from '../scripts/embedded-redis.js';
import { sourcePath } from '../proto/source-path.js';

interface Options {
  seconds: number;
  /** One constant-rate phase per rate. */
  rates: number[];
  concurrency: number;
  apps: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 10, rates: [1000, 2000], concurrency: 32, apps: 1000 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    const values = (argv[i + 1] ?? '').split(',').map(Number);
    const bad = !values.every((v) => Number.isFinite(v) && v > 0);
    if (key === 'rate' && !bad) opts.rates = values;
    else if ((key === 'seconds' || key === 'concurrency' || key === 'apps') && !bad && values.length === 1) opts[key] = values[0]!;
    else throw new Error(`usage: events-bench [--seconds N] [--rate N[,N...]] [--concurrency N] [--apps N] (bad: ${argv[i]} ${argv[i + 1]})`);
  }
  return opts;
}

const TOKEN = 'bench-token-0123456789';

class EventSource {
  private readonly seqs: number[];
  private next = 0;
  private id = 0;
  constructor(private readonly apps: number) {
    this.seqs = new Array<number>(apps).fill(0);
  }
  body(): string {
    const a = this.next++ % this.apps;
    const seq = ++this.seqs[a]!;
    const app = `bench-${a}`;
    const port = 20000 + (seq % 1000);
    const event =
      seq === 2
        ? { id: `b-${++this.id}`, app, seq, type: 'domains', domains: [`www.${app}.test`, `api.${app}.test`] }
        : {
            id: `b-${++this.id}`,
            app,
            seq,
            type: seq === 1 ? 'deploy' : 'scale',
            containers: [
              { id: 'web-1', host: '10.0.0.1', port },
              { id: 'web-2', host: '10.0.0.2', port },
              { id: 'web-3', host: '10.0.0.3', port },
            ],
          };
    return JSON.stringify(event);
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Result {
  phase: string;
  sent: number;
  ok: number;
  errors: number;
  seconds: number;
  eventsPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

function summarize(phase: string, latencies: number[], errors: number, seconds: number): Result {
  const sorted = [...latencies].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / (sorted.length || 1);
  return {
    phase,
    sent: latencies.length + errors,
    ok: latencies.length,
    errors,
    seconds,
    eventsPerSecond: latencies.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    mean,
  };
}

async function post(pool: Pool, body: string): Promise<boolean> {
  const res = await pool.request({
    path: '/v1/events',
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body,
  });
  await res.body.dump();
  return res.statusCode === 200;
}

async function healthz(pool: Pool): Promise<boolean> {
  const res = await pool.request({ path: '/healthz', method: 'GET' });
  await res.body.dump();
  return res.statusCode === 200;
}

async function closedLoop(pool: Pool, source: EventSource | null, opts: Options): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const ok = await (source === null ? healthz(pool) : post(pool, source.body())).catch(() => false);
        if (ok) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  return summarize(`${source === null ? 'baseline GET /healthz' : 'events'}, closed loop, ${opts.concurrency} connections`, latencies, errors, (performance.now() - started) / 1000);
}

async function constantRate(pool: Pool, source: EventSource, opts: Options, rate: number): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  const total = Math.floor(rate * opts.seconds);
  const interval = 1000 / rate;
  const started = performance.now();
  const inflight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const scheduled = started + i * interval;
    const wait = scheduled - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      post(pool, source.body()).then(
        (ok) => {
          if (ok) latencies.push(performance.now() - scheduled);
          else errors++;
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(inflight);
  return summarize(`constant ${rate}/s`, latencies, errors, (performance.now() - started) / 1000);
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The control plane runs as its own process with its log going to a file, as under systemd
 * or Kubernetes: a pipe the benchmark drains on the same two cores would stall its synchronous
 * log writes and measure the pipe, not the service.
 */
async function startControlPlane(redisUrl: string, logFile: string): Promise<{ child: ChildProcess; port: number }> {
  const entry = sourcePath(import.meta.url, '..', 'dist', 'control-plane', 'src', 'main.js');
  const nodeArgs = (process.env['CP_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const port = await freePort();
  const log = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...nodeArgs, entry], {
    env: { ...process.env, REDIS_URL: redisUrl, CONTROL_PLANE_TOKENS: TOKEN, CONTROL_PLANE_PORT: String(port), CONTROL_PLANE_GRPC_PORT: '0', LOG_LEVEL: 'info', REDIS_PREFIX: 'bench:' },
    stdio: ['ignore', log, log],
  });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`control plane exited with ${child.exitCode}; see ${logFile}`);
    const up = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    if (up) return { child, port };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`control plane did not start in 20 s; see ${logFile}`);
}

function table(results: Result[]): string {
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const rows = results.map((r) => `| ${r.phase} | ${r.ok} | ${r.errors} | ${Math.round(r.eventsPerSecond)} | ${f(r.mean)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} |`);
  return ['| phase | applied | errors | events/s | mean ms | p50 ms | p99 ms | max ms |', '|---|---:|---:|---:|---:|---:|---:|---:|', ...rows].join('\n');
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const redis = await startEmbeddedRedis();
  const logFile = path.join(os.tmpdir(), `events-bench-control-plane-${process.pid}.log`);
  const { child, port } = await startControlPlane(redis.url, logFile);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: Math.max(opts.concurrency, 64), pipelining: 1 });
  try {
    const source = new EventSource(opts.apps);
    // Warm-up creates every app so both phases measure the steady state (scale events).
    await closedLoop(pool, source, { ...opts, seconds: 2 });
    // The same HTTP stack doing no work: the ceiling any endpoint of this process can reach here.
    const results = [await closedLoop(pool, null, opts), await closedLoop(pool, source, opts)];
    for (const rate of opts.rates) results.push(await constantRate(pool, source, opts, rate));
    const md = table(results);
    console.log(`\nmachine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load generator on the same machine\n`);
    console.log(md);
    const dir = sourcePath(import.meta.url, 'reports');
    await mkdir(dir, { recursive: true });
    const file = `${dir}/events-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
    await writeFile(file, JSON.stringify({ options: opts, node: process.version, cpus: os.cpus().length, results }, null, 2));
    console.log(`\nwritten: ${file}`);
  } finally {
    await pool.close();
    child.kill('SIGTERM');
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

/**
 * Router memory with a large platform: RSS of each worker (VmRSS) on a fresh router, after
 * `apps` apps were created (the workers receive every invalidation but cache nothing), and
 * after requesting enough distinct hostnames that each worker's route cache is at its bound —
 * once filling it, then cycling through them again (the steady state of an LRU that evicts).
 */
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { devtools, inspectorUrls } from './inspector.js';
import { container, type Platform } from './platform.js';
import { HOST, rssMiB, sleep, type RouterProcess } from './processes.js';
import type { Progress } from './progress.js';

export interface RssSample {
  label: string;
  /** MiB per worker, by worker id. */
  workers: Record<string, number>;
  primary: number;
  routeCacheEntries: number;
  /** V8 heap in use, summed over the workers: includes garbage not collected yet. */
  heapUsedMiB: number;
  /** V8 heap after two full GCs, by worker id: what the process really holds. NaN without an inspector. */
  retainedMiB: Record<string, number>;
}

/** Worker pid → heap MiB after two full collections, through each process's inspector (see the router log). */
async function retained(router: RouterProcess): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const urls = await inspectorUrls(router.logFile);
  for (const url of urls) {
    try {
      const [pid, , , usage] = (await devtools(url, [
        ['Runtime.evaluate', { expression: 'process.pid', returnByValue: true }],
        ['HeapProfiler.collectGarbage', {}],
        ['HeapProfiler.collectGarbage', {}],
        ['Runtime.getHeapUsage', {}],
      ])) as [{ result: { value: number } }, unknown, unknown, { usedSize: number }];
      out.set(pid.result.value, usage.usedSize / 2 ** 20);
    } catch {
      // no inspector (another process holds the port range): RSS still tells the story
    }
  }
  return out;
}

export interface MemoryResult {
  apps: number;
  cacheMax: number;
  workers: number;
  createSeconds: number;
  eventsPerSecond: number;
  createFailures: number;
  hostnamesRequested: number;
  passes: number;
  requestErrors: number;
  samples: RssSample[];
  redisUsedMiB: number;
}

async function gauges(router: RouterProcess): Promise<{ cacheEntries: number; heapUsedMiB: number }> {
  const text = await fetch(`http://${HOST}:${router.adminPort}/metrics`).then((r) => r.text(), () => '');
  const gauge = (name: string): number => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+]+)$`, 'm').exec(text);
    return m === null ? NaN : Number(m[1]);
  };
  return { cacheEntries: gauge('router_route_cache_entries'), heapUsedMiB: gauge('nodejs_heap_size_used_bytes') / 2 ** 20 };
}

async function sample(router: RouterProcess, label: string): Promise<RssSample> {
  const workers: Record<string, number> = {};
  const retainedMiB: Record<string, number> = {};
  // RSS and the gauges first: the forced collections below shrink both.
  const pids = await router.workerPids();
  for (const [id, pid] of pids) workers[String(id)] = await rssMiB(pid);
  const g = await gauges(router);
  const primary = await rssMiB(router.child.pid);
  const heaps = await retained(router);
  for (const [id, pid] of pids) retainedMiB[String(id)] = heaps.get(pid) ?? NaN;
  return { label, workers, primary, routeCacheEntries: g.cacheEntries, heapUsedMiB: g.heapUsedMiB, retainedMiB };
}

/** `work(i)` for i < n, `concurrency` at a time, until done or `timeoutMs`; returns the failures. */
async function parallel(n: number, concurrency: number, timeoutMs: number, work: (i: number) => Promise<void>, onProgress: (done: number) => void): Promise<number> {
  let next = 0;
  let done = 0;
  let failures = 0;
  const deadline = performance.now() + timeoutMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n && performance.now() < deadline) {
        const i = next++;
        try {
          await work(i);
        } catch {
          failures++;
        }
        if (++done % 10_000 === 0) onProgress(done);
      }
    }),
  );
  return failures + (n - done);
}

export async function memory(platform: Platform, router: RouterProcess, redisUrl: string, backendPort: number, apps: number, cacheMax: number, passes: number, progress: Progress): Promise<MemoryResult> {
  const samples: RssSample[] = [];
  // The router has just started: let its startup garbage be collected before the baseline.
  await sleep(2_000);
  samples.push(await sample(router, 'fresh router, idle'));
  const target = [container('b1', backendPort)];

  const t0 = performance.now();
  const createFailures = await parallel(apps, 32, 600_000, (i) => platform.deploy(`m-${i}`, target), (d) => progress.note(`${d}/${apps} apps created`));
  const createSeconds = (performance.now() - t0) / 1000;
  await sleep(2_000);
  samples.push(await sample(router, `${apps} apps in Redis, cache cold`));

  // Each worker sees about half the requests (round-robin accept): three times the bound in
  // distinct names leaves each worker well past it.
  const hostnames = Math.min(apps, 3 * cacheMax);
  const pool = new Pool(`http://${HOST}:${router.port}`, { connections: 32, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  let requestErrors = 0;
  try {
    // Several passes: RSS and heap that keep growing at a constant number of entries would be a leak.
    for (let pass = 1; pass <= passes; pass++) {
      requestErrors += await parallel(hostnames, 32, 300_000, async (i) => {
        const res = await pool.request({ path: '/', method: 'GET', headers: { host: `m-${i}.localhost` } });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      }, (d) => progress.note(`pass ${pass}: ${d}/${hostnames} hostnames requested`));
      // The cache-size gauge is published once a second.
      await sleep(2_000);
      samples.push(await sample(router, pass === 1 ? `${hostnames} distinct hostnames requested: cache at its bound` : `the same hostnames again, pass ${pass} (LRU evicting)`));
    }
  } finally {
    await pool.close();
  }

  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let redisUsedMiB = NaN;
  try {
    await redis.connect();
    const info = await redis.info('memory');
    const m = /^used_memory:(\d+)/m.exec(info);
    if (m !== null) redisUsedMiB = Number(m[1]) / 1024 / 1024;
  } catch {
    // context only
  } finally {
    redis.disconnect();
  }
  return {
    apps,
    cacheMax,
    workers: Object.keys(samples[0]!.workers).length,
    createSeconds,
    eventsPerSecond: apps / createSeconds,
    createFailures,
    hostnamesRequested: hostnames,
    passes,
    requestErrors,
    samples,
    redisUsedMiB,
  };
}

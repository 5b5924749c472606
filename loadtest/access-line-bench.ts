/**
 * Cost per access-log line: the router's sink (hand-written NDJSON + per-app batching) against
 * the pino sink it replaced, both writing to /dev/null.
 *
 *   npm run build && node dist/loadtest/access-line-bench.js [--runs 5] [--ms 400]
 *
 * Each variant handles pre-built, realistic lines (50 apps, varied paths, 1 in 20 an unknown
 * host) for `ms` milliseconds per run, yielding to the event loop every 256 lines as a busy
 * server does (so asynchronous writes complete inside the measurement), `runs` times in
 * alternation; the table gives medians. ns/line is wall time on the main thread; cpu ns/line
 * is process CPU (all threads: pino writes from the thread pool) over the same lines.
 * Bounded: about runs × variants × ms (5 × 5 × 0.4 s ≈ 10 s).
 */
import fs from 'node:fs';
import { pino } from 'pino';
import { encodeBatch } from '../proto/log-batch.js';
import { Batcher } from '../data-plane/src/access-logs/batcher.js';
import { encodeAccessLine } from '../data-plane/src/access-logs/line-encoder.js';
import { createAccessLogShipping } from '../data-plane/src/access-logs/shipping.js';
import { RouterMetrics } from '../data-plane/src/metrics.js';
import { accessLine, type AccessLogLine } from '../data-plane/src/proxy/access-log.js';

interface Variant {
  name: string;
  sink: (line: AccessLogLine) => void;
  close(): Promise<void>;
}

function args(): { runs: number; ms: number } {
  const out = { runs: 5, ms: 400 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if ((key === 'runs' || key === 'ms') && Number.isInteger(value) && value > 0) out[key] = Math.min(value, key === 'ms' ? 3000 : 20);
    else throw new Error(`usage: access-line-bench [--runs N] [--ms N] (bad: ${argv[i]} ${argv[i + 1]})`);
  }
  return out;
}

function sampleLines(n: number): AccessLogLine[] {
  const lines: AccessLogLine[] = [];
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const unknown = i % 20 === 0;
    const app = unknown ? '-' : `app-${i % 50}`;
    const path = i % 7 === 0 ? `/api/v1/items/${i}?page=${i % 13}&sort=desc&q=${'x'.repeat(i % 40)}` : `/static/js/chunk-${i % 300}.js`;
    lines.push(
      accessLine(now + i, unknown ? 'UNKNOWN_HOST' : '-', app, i % 5 === 0 ? 'POST' : 'GET', unknown ? `nope-${i}.example.com` : `${app}.apps.example.com`, path, unknown ? 404 : 200, i % 5 === 0 ? 512 : 0, 1000 + (i % 5000), i % 3, 2 + (i % 40), `0c8e4f3e-5f9a-4c55-9d4b-${String(100000000000 + i)}`, unknown ? '-' : `c-${i % 4}`, `10.1.${i % 255}.${(i * 7) % 255}`, 'http/1.1'),
    );
  }
  return lines;
}

function variants(): Variant[] {
  const devNull = fs.openSync('/dev/null', 'w');
  const silent = pino({ level: 'silent' });
  const config = { logShipper: undefined, logShipperToken: undefined, logBatchBytes: 65536, logBatchMs: 200, logSpoolBytes: 64 * 1024 * 1024 };

  // The sink this issue replaced (router.ts before it): pino, asynchronous destination.
  const destination = pino.destination({ dest: '/dev/null', sync: false });
  const oldLogger = pino({ base: null, timestamp: false, messageKey: 'msg' }, destination);

  const appendOnly = new Batcher({ maxBytes: 65536, maxMs: 200, onBatch: () => undefined });
  const stringified = new Batcher({ maxBytes: 65536, maxMs: 200, onBatch: () => undefined });
  let seq = 1;
  const framed = new Batcher({ maxBytes: 65536, maxMs: 200, onBatch: (b) => void encodeBatch(seq++, b.sections) });
  const stdout = createAccessLogShipping(config, new RouterMetrics(500), silent, { fd: devNull });

  return [
    { name: 'pino sink (before), async to /dev/null', sink: (l) => oldLogger.info(l), close: async () => destination.flushSync() },
    { name: 'encode + append (batches discarded)', sink: (l) => appendOnly.append(l.app, encodeAccessLine(l)), close: async () => appendOnly.close() },
    { name: 'JSON.stringify + append (reference for the encoder)', sink: (l) => stringified.append(l.app, `${JSON.stringify(l)}\n`), close: async () => stringified.close() },
    { name: 'encode + append + BATCH frame (shipper path, no socket)', sink: (l) => framed.append(l.app, encodeAccessLine(l)), close: async () => framed.close() },
    { name: 'router sink, stdout mode, to /dev/null', sink: stdout.sink, close: () => stdout.close() },
  ];
}

async function measure(v: Variant, lines: AccessLogLine[], ms: number): Promise<{ ns: number; cpuNs: number }> {
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(ms) * 1_000_000n;
  for (;;) {
    for (let k = 0; k < 256; k++) v.sink(lines[n++ % lines.length]!);
    await new Promise((r) => setImmediate(r));
    if (process.hrtime.bigint() >= deadline) break;
  }
  const wall = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  return { ns: wall / n, cpuNs: ((cpu.user + cpu.system) * 1000) / n };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function main(): Promise<void> {
  const { runs, ms } = args();
  const lines = sampleLines(10_000);
  const vs = variants();
  // Warm-up: JIT every path once.
  for (const v of vs) await measure(v, lines, 100);
  const results = vs.map(() => ({ ns: [] as number[], cpu: [] as number[] }));
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < vs.length; i++) {
      const m = await measure(vs[i]!, lines, ms);
      results[i]!.ns.push(m.ns);
      results[i]!.cpu.push(m.cpuNs);
    }
  }
  for (const v of vs) await v.close();
  const avgBytes = lines.reduce((n, l) => n + encodeAccessLine(l).length, 0) / lines.length;
  console.log(`Node ${process.version}, ${runs} runs × ${ms} ms per variant, lines of ${avgBytes.toFixed(0)} bytes on average\n`);
  console.log('| variant | ns/line (median) | spread | cpu ns/line (median) |');
  console.log('|---|---:|---|---:|');
  vs.forEach((v, i) => {
    const { ns, cpu } = results[i]!;
    console.log(`| ${v.name} | ${median(ns).toFixed(0)} | ${Math.min(...ns).toFixed(0)} – ${Math.max(...ns).toFixed(0)} | ${median(cpu).toFixed(0)} |`);
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

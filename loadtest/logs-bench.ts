/**
 * Scalingo's log experiment, reproduced against our log-shipper:
 *
 *   npm run bench:logs [-- --quick] [--rates 100,250,312,375,500,1000,2000] [--seconds 60]
 *     [--reopen-seconds 20] [--apps 100] [--search-apps 100,10000] [--search-seconds 30]
 *     [--apps-per-batch 8] [--connections 4] [--no-search]
 *
 * For each rate: 64 KB batches (200 lines of 320 bytes) sent at that constant rate for
 * `seconds` to a freshly started shipper (file backend, default settings) while a SIGHUP
 * reopens its files every `reopen-seconds`; reported: the lines due by the end that were
 * still not written (acknowledged) a second after the end — Scalingo: 0 at 250/s, 4096 at 312/s —, the
 * shipper's CPU and peak RSS; then every line is waited for and the files' sizes checked
 * (nothing lost). Then the highest rate with 0 remaining, for 100 and for 10 000 apps (the
 * latter churns through LOG_MAX_OPEN_FILES=1024 handles). The machine's raw append speed,
 * `dd` with 64 KB blocks, is measured in the same run.
 *
 * Each batch holds `apps-per-batch` apps' sections (the apps taken in turn, so every app's
 * file is written): the shipper makes one write per app per batch, as with real routers.
 * The sender runs in this process and shares the two cores with the shipper.
 * SHIPPER_NODE_ARGS passes flags to the shipper's node (a CPU profile: "--cpu-prof
 * --cpu-prof-dir=/tmp/shipper-prof"). LOGS_BENCH_TIMELINE=1 prints, per run, the batches
 * not yet sent and not yet acked every 500 ms (when the shipper fell behind, and for how
 * long) and the shipper's write-latency histograms.
 */
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sourcePath } from '../proto/source-path.js';
import { writeReport } from './report-files.js';
import { BatchSender, line, LINE_BYTES } from './logs-bench/batch-sender.js';
import { measured } from './router-bench/machine.js';
import { cpuMs, freePort, rssMiB, run, sleep, spawnLogged, stopAll, type Child } from './router-bench/processes.js';
import { Progress } from './router-bench/progress.js';

const TOKEN = 'logs-bench-token-0123456789';
const BATCH_BYTES = 64 * 1024;
/** Whole lines, the same number per app section: just under 64 KiB. */
const linesPerSection = (appsPerBatch: number): number => Math.floor(BATCH_BYTES / LINE_BYTES / appsPerBatch);
/** Unacked batches each connection keeps in flight (4 MiB): a shipper behind by more shows as a slipped schedule. */
const WINDOW = 64;
const ACK_GRACE_MS = 1_000;

interface Options {
  quick: boolean;
  rates: number[];
  seconds: number;
  reopenSeconds: number;
  apps: number;
  searchApps: number[];
  searchSeconds: number;
  appsPerBatch: number;
  connections: number;
  search: boolean;
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = quick
    ? { quick, rates: [250, 1000, 2000], seconds: 5, reopenSeconds: 2, apps: 100, searchApps: [100, 10_000], searchSeconds: 4, appsPerBatch: 8, connections: 4, search: true }
    : { quick, rates: [100, 250, 312, 375, 500, 1000, 2000], seconds: 60, reopenSeconds: 20, apps: 100, searchApps: [100, 10_000], searchSeconds: 30, appsPerBatch: 8, connections: 4, search: true };
  const list = (raw: string): number[] => raw.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`not a positive integer: ${x}`);
    return n;
  });
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    if (a === '--quick') continue;
    if (a === '--no-search') o.search = false;
    else if (v === undefined) throw new Error(`${a} needs a value`);
    else if (a === '--rates') (o.rates = list(v)), i++;
    else if (a === '--seconds') (o.seconds = list(v)[0]!), i++;
    else if (a === '--reopen-seconds') (o.reopenSeconds = list(v)[0]!), i++;
    else if (a === '--apps') (o.apps = list(v)[0]!), i++;
    else if (a === '--search-apps') (o.searchApps = list(v)), i++;
    else if (a === '--search-seconds') (o.searchSeconds = list(v)[0]!), i++;
    else if (a === '--apps-per-batch') (o.appsPerBatch = list(v)[0]!), i++;
    else if (a === '--connections') (o.connections = list(v)[0]!), i++;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

interface RateResult {
  apps: number;
  rate: number;
  seconds: number;
  due: number;
  sent: number;
  acked: number;
  /** Due by the end but not written at the end. */
  remaining: number;
  /** After waiting: lines in the files (by size) minus lines acked — must be 0. */
  lost: number;
  cpuCores: number;
  senderCores: number;
  peakRssMiB: number;
  reopens: number;
  foreignCores: number;
}

/** Section data per app, built once: the lines are the same for every batch of that app. */
class Corpus {
  private readonly cache = new Map<string, Buffer>();
  constructor(private readonly linesPerSection: number) {}
  section(app: string): Buffer {
    let data = this.cache.get(app);
    if (data === undefined) {
      const lines: string[] = [];
      for (let i = 0; i < this.linesPerSection; i++) lines.push(line(app, i));
      data = Buffer.from(`${lines.join('\n')}\n`);
      this.cache.set(app, data);
    }
    return data;
  }
}

async function startShipper(runDir: string, logDir: string, port: number): Promise<Child> {
  const entry = sourcePath(import.meta.url, '..', 'dist', 'log-shipper', 'src', 'main.js');
  // SHIPPER_NODE_ARGS passes flags to the shipper's node (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  const nodeArgs = (process.env['SHIPPER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const child = spawnLogged('log-shipper', process.execPath, [...nodeArgs, entry], {
    ...process.env,
    LOG_SHIPPER_HOST: '127.0.0.1',
    LOG_SHIPPER_PORT: String(port),
    LOG_SHIPPER_TOKEN: TOKEN,
    LOG_DIR: logDir,
    LOG_BACKENDS: 'file',
    // Rotation happens (its cost is part of the figure) but keeps everything, so every
    // acknowledged line can be found in the files; the run's directory is deleted after it.
    LOG_ROTATE_BYTES: String(256 * 1024 * 1024),
    LOG_ROTATE_KEEP: '100',
    LOG_LEVEL: 'warn',
  }, path.join(runDir, 'log-shipper.log'));
  const deadline = performance.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return child;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error(`the log-shipper did not start: see ${child.logFile}`);
    await sleep(50);
  }
}

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

async function oneRate(runDir: string, apps: number, rate: number, seconds: number, o: Options, progress: Progress): Promise<RateResult> {
  const logDir = path.join(runDir, `logs-${apps}-${rate}`);
  await mkdir(logDir);
  const port = await freePort();
  const shipper = await startShipper(runDir, logDir, port);
  // Several connections, as from several router workers: the shipper paces each connection.
  const senders = Array.from({ length: o.connections }, () => new BatchSender(port, TOKEN, WINDOW));
  await Promise.all(senders.map((x) => x.connect()));
  let turn = 0;
  /** The next connection with room in its window, or null when all are full (behind schedule). */
  const sender = (): BatchSender | null => {
    for (let k = 0; k < senders.length; k++) {
      const candidate = senders[turn++ % senders.length]!;
      if (candidate.canSend()) return candidate;
    }
    return null;
  };
  const total = (field: 'batchesSent' | 'linesSent' | 'linesAcked'): number => senders.reduce((sum, x) => sum + x.stats[field], 0);
  const corpus = new Corpus(linesPerSection(o.appsPerBatch));
  const LINES_PER_BATCH = linesPerSection(o.appsPerBatch) * o.appsPerBatch;
  const names = Array.from({ length: apps }, (_, i) => `app-${String(i).padStart(5, '0')}`);
  let nextApp = 0;
  const batch = (): Array<{ app: string; data: Buffer }> => {
    const sections = [];
    for (let j = 0; j < o.appsPerBatch; j++) {
      const app = names[nextApp++ % apps]!;
      sections.push({ app, data: corpus.section(app) });
    }
    return sections;
  };

  let peakRss = 0;
  const sampler = setInterval(() => void rssMiB(shipper.pid).then((r) => (peakRss = Math.max(peakRss, r)), () => undefined), 250);
  let reopens = 0;
  const reopener = setInterval(() => {
    shipper.proc.kill('SIGHUP');
    reopens++;
  }, o.reopenSeconds * 1000);
  const cpu0 = await cpuMs([shipper.pid]);
  const self0 = process.cpuUsage();
  const timeline: string[] = [];
  const result = await measured(async () => {
    const t0 = performance.now();
    const tl = setInterval(() => {
      const dueNow = Math.min(Math.floor(((performance.now() - t0) / 1000) * rate), rate * seconds);
      const acked = senders.reduce((n, x) => n + x.stats.batchesAcked, 0);
      timeline.push(`${((performance.now() - t0) / 1000).toFixed(1)}:${dueNow - total('batchesSent')}/${total('batchesSent') - acked}`);
    }, 500);
    const end = t0 + seconds * 1000;
    let due = 0;
    while (performance.now() < end) {
      due = Math.min(Math.floor(((performance.now() - t0) / 1000) * rate), rate * seconds);
      let next = sender();
      for (; total('batchesSent') < due && next !== null; next = sender()) next.send(batch(), LINES_PER_BATCH);
      await new Promise((resolve) => setImmediate(resolve));
      // Up to date, or behind with every window full: either way nothing to send before a
      // tick (spinning on setImmediate while behind took the shipper's CPU: 0.7 of a core).
      if (total('batchesSent') >= due || next === null) await sleep(1);
    }
    // The last batches due at the very end, if the loop left before sending them.
    for (let next = sender(); total('batchesSent') < rate * seconds && next !== null; next = sender()) next.send(batch(), LINES_PER_BATCH);
    clearInterval(tl);
    const cpu = await cpuMs([shipper.pid]);
    const elapsed = performance.now() - t0;
    const self = process.cpuUsage(self0);
    // A batch sent in the last instant cannot be acknowledged yet: what counts is what is still
    // unwritten a second later (a shipper that falls behind is behind by far more).
    await sleep(ACK_GRACE_MS);
    return { acked: total('linesAcked'), sent: total('linesSent'), cpu, elapsed, senderCores: (self.user + self.system) / 1000 / elapsed };
  });
  clearInterval(reopener);
  clearInterval(sampler);
  const dueLines = rate * seconds * LINES_PER_BATCH;
  // Everything still owed is sent now, then waited for: nothing may be lost.
  while (total('batchesSent') < rate * seconds) {
    const next = sender();
    if (next !== null) next.send(batch(), LINES_PER_BATCH);
    else await sleep(1);
  }
  const settled = await Promise.all(senders.map((x) => x.settle(120_000)));
  if (!settled.every(Boolean)) progress.note(`${senders.reduce((n, x) => n + x.unacked(), 0)} batches never acknowledged`);
  for (const x of senders) x.close();
  if (process.env['LOGS_BENCH_TIMELINE'] !== undefined) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    progress.note(text.split('\n').filter((l) => /write_seconds_bucket|fsyncs_total|filesystem_syncs/.test(l)).join('\n'));
  }
  await shipper.stop('SIGTERM', 30_000);
  const inFiles = (await bytesUnder(logDir)) / LINE_BYTES;
  await rm(logDir, { recursive: true, force: true });
  const cpuCores = (result.cpu.user + result.cpu.sys - cpu0.user - cpu0.sys) / result.elapsed;
  const r: RateResult = {
    apps,
    rate,
    seconds,
    due: dueLines,
    sent: result.sent,
    acked: result.acked,
    remaining: Math.max(0, dueLines - result.acked),
    lost: total('linesAcked') - inFiles,
    cpuCores,
    senderCores: result.senderCores,
    peakRssMiB: peakRss,
    reopens,
    foreignCores: result.machine.foreignCores,
  };
  progress.note(`${apps} apps, ${rate}/s: remaining ${r.remaining}, shipper ${cpuCores.toFixed(2)} cores, sender ${result.senderCores.toFixed(2)}, other ${result.machine.foreignCores.toFixed(2)}, ${peakRss.toFixed(0)} MiB, acked ${total('linesAcked')}, in files ${inFiles}`);
  if (process.env['LOGS_BENCH_TIMELINE'] !== undefined) progress.note(`timeline (s:unsent/unacked batches) ${timeline.join(' ')}`);
  return r;
}

async function ddAppend(runDir: string, quick: boolean): Promise<{ mbPerS: number; batchesPerS: number; text: string }> {
  const file = path.join(runDir, 'dd.bin');
  const count = quick ? 2048 : 16384;
  const out = await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=64k', `count=${count}`, 'oflag=append', 'conv=notrunc'], 120_000);
  await rm(file, { force: true });
  const m = /(\d+) bytes .* s, ([\d.]+) (\w)B\/s/.exec(out.stderr);
  const bytes = Number(m?.[1] ?? 0);
  const secs = Number(/copied, ([\d.]+) s/.exec(out.stderr)?.[1] ?? NaN);
  const mbPerS = bytes / secs / 1e6;
  return { mbPerS, batchesPerS: bytes / secs / BATCH_BYTES, text: out.stderr.trim().split('\n').pop() ?? '' };
}

function render(o: Options, machine: string, dd: Awaited<ReturnType<typeof ddAppend>>, rates: RateResult[], search: RateResult[][], startedAt: Date, argv: string[]): string {
  const row = (r: RateResult): string =>
    `| ${r.apps} | ${r.rate} | ${(r.rate * BATCH_BYTES / 1e6).toFixed(1)} | ${r.remaining} | ${r.lost} | ${r.cpuCores.toFixed(2)} | ${r.senderCores.toFixed(2)} | ${r.peakRssMiB.toFixed(0)} | ${r.reopens} | ${r.foreignCores.toFixed(2)} |`;
  const head = '| apps | batches/s | MB/s | lines remaining at the end | lost | shipper CPU (cores) | sender CPU (cores) | peak RSS MiB | reopens | other work (cores) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const best = search.map((runs) => {
    const ok = runs.filter((r) => r.remaining === 0);
    return ok.length === 0 ? null : ok.reduce((a, b) => (b.rate > a.rate ? b : a));
  });
  return [
    `# Log-shipper benchmark — ${startedAt.toISOString()}`,
    '',
    `Command: \`npm run bench:logs --${argv.length ? ` ${argv.join(' ')}` : ''}\``,
    `Machine: ${machine}`,
    '',
    `Batches of ${linesPerSection(o.appsPerBatch) * o.appsPerBatch} lines of ${LINE_BYTES} bytes (${((linesPerSection(o.appsPerBatch) * o.appsPerBatch * LINE_BYTES) / 1024).toFixed(1)} KiB) over ${o.appsPerBatch} apps, from ${o.connections} connections (router workers); SIGHUP every ${o.reopenSeconds} s; file backend with default settings (LOG_FSYNC=interval, LOG_MAX_OPEN_FILES=1024), LOG_ROTATE_BYTES=256 MiB, LOG_ROTATE_KEEP=100 (rotation happens, nothing is discarded). "Remaining": lines due by the end of the ${o.seconds} s that were not acknowledged (written) one second later. "Lost": lines acknowledged but not in the files once everything was waited for.`,
    '',
    `Raw append speed of this disk (\`dd if=/dev/zero bs=64k oflag=append\`): **${dd.mbPerS.toFixed(0)} MB/s = ${dd.batchesPerS.toFixed(0)} batches of 64 KB per second** (${dd.text}).`,
    '',
    '## Scalingo\'s rates',
    '',
    head,
    ...rates.map(row),
    '',
    '## Highest rate with 0 remaining',
    '',
    head,
    ...search.flat().map(row),
    '',
    ...search.map((runs, i) => `- ${runs[0]?.apps ?? '?'} apps: ${best[i] === null || best[i] === undefined ? 'none of the rates tried' : `**${best[i]!.rate} batches/s** (${(best[i]!.rate * BATCH_BYTES / 1e6).toFixed(0)} MB/s)`}`),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  const startedAt = new Date();
  // Upwards from what the sweep's top rates usually sustain, stopping at the first rate that leaves lines behind;
  // downwards when even the first one does (10 000 apps churning through the file handles), until one leaves none.
  const searchLadder = o.quick ? [1000, 2000] : [1000, 1500, 2000, 2500, 3000, 4000, 6000];
  const searchDown = o.quick ? [500] : [750, 500, 375, 250, 100];
  const planned = o.rates.length * (o.seconds + 5) + (o.search ? o.searchApps.length * searchLadder.length * (o.searchSeconds + 5) : 0) + 20;
  const progress = new Progress(planned);
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'logs-bench-'));
  try {
    const cpus = os.cpus();
    const machine = `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}; sender in the same VM on the same cores; load average at start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`;
    progress.step('raw append speed (dd)', 10);
    const dd = await ddAppend(runDir, o.quick);
    progress.note(`dd: ${dd.mbPerS.toFixed(0)} MB/s`);
    const rates: RateResult[] = [];
    for (const rate of o.rates) {
      progress.step(`${o.apps} apps at ${rate} batches/s`, o.seconds + 5);
      rates.push(await oneRate(runDir, o.apps, rate, o.seconds, o, progress));
    }
    const search: RateResult[][] = [];
    if (o.search) {
      for (const apps of o.searchApps) {
        const runs: RateResult[] = [];
        for (const rate of searchLadder) {
          progress.step(`search: ${apps} apps at ${rate} batches/s`, o.searchSeconds + 5);
          const r = await oneRate(runDir, apps, rate, o.searchSeconds, o, progress);
          runs.push(r);
          if (r.remaining > 0) break;
        }
        if (runs.length === 1 && runs[0]!.remaining > 0) {
          for (const rate of searchDown) {
            progress.step(`search: ${apps} apps at ${rate} batches/s`, o.searchSeconds + 5);
            const r = await oneRate(runDir, apps, rate, o.searchSeconds, o, progress);
            runs.push(r);
            if (r.remaining === 0) break;
          }
        }
        search.push(runs);
      }
    }
    const report = render(o, machine, dd, rates, search, startedAt, argv);
    const written = await writeReport('logs', startedAt, report, { options: o, dd, rates, search });
    process.stdout.write(`${report}\nreport: ${written}\n`);
  } finally {
    await stopAll();
    await rm(runDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`logs-bench failed: ${(err as Error).stack ?? String(err)}\n`);
  void stopAll().finally(() => process.exit(1));
});

/**
 * What the page cache of freshly written log data costs the writer, with nothing else
 * running: one file appended with 64 KiB writes at the shipper's top rate, an fdatasync every
 * second (LOG_FSYNC=interval), first with the synced pages dropped (what the shipper does,
 * log-shipper/src/backends/page-cache.ts), then with them kept in the cache (what it did).
 *
 *   npm run bench:page-cache [-- --seconds 70] [--rate 2000]
 *
 * Reported every 5 s: the writer's system CPU (cores) and the page cache's size. On this VM
 * the kept run's system time jumps ~8x once the cache has grown by ~5 GB: the hypervisor took
 * freed guest memory back ("Free page reporting enabled" in dmesg), so every page beyond
 * that is a fault on the host. The kept run comes second so that the dropped one cannot
 * inherit memory the first left warm.
 */
import { closeSync, fdatasyncSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { PageCache } from '../log-shipper/src/backends/page-cache.js';
import { writeReport } from './report-files.js';

const CHUNK = 64 * 1024;

interface Sample {
  at: number;
  writtenGB: number;
  sysCores: number;
  cachedGB: number;
}

function cachedGB(): number {
  const m = /^Cached:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m === null ? NaN : Number(m[1]) / 1024 / 1024;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function writeFor(seconds: number, rate: number, drop: PageCache | null): Promise<Sample[]> {
  const file = path.join(os.tmpdir(), `page-cache-bench-${process.pid}.log`);
  const fd = openSync(file, 'a');
  const chunk = Buffer.alloc(CHUNK, 0x78);
  const samples: Sample[] = [];
  const t0 = performance.now();
  let written = 0;
  let lastSync = t0;
  let lastSample = t0;
  let cpu = process.cpuUsage();
  try {
    for (let now = t0; now - t0 < seconds * 1000; now = performance.now()) {
      const due = Math.floor(((now - t0) / 1000) * rate);
      for (; written < due; written++) writeSync(fd, chunk);
      if (now - lastSync >= 1000) {
        fdatasyncSync(fd);
        drop?.dropSynced(fd, written * CHUNK);
        lastSync = now;
      }
      if (now - lastSample >= 5000) {
        const used = process.cpuUsage(cpu);
        samples.push({ at: (now - t0) / 1000, writtenGB: (written * CHUNK) / 1e9, sysCores: used.system / 1000 / (now - lastSample), cachedGB: cachedGB() });
        cpu = process.cpuUsage();
        lastSample = now;
      }
      await sleep(2);
    }
  } finally {
    closeSync(fd);
    unlinkSync(file);
  }
  return samples;
}

function parseArgs(argv: string[]): { seconds: number; rate: number } {
  const o = { seconds: 70, rate: 2000 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = Number(argv[i + 1]);
    if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`${argv[i]} needs a positive integer`);
    if (argv[i] === '--seconds') o.seconds = v;
    else if (argv[i] === '--rate') o.rate = v;
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return o;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  const startedAt = new Date();
  const pageCache = await PageCache.create(pino({ level: 'warn' }));
  if (!pageCache.available) throw new Error('posix_fadvise is not available here: nothing to compare');
  process.stdout.write(`dropping synced pages, ${o.rate} x 64 KiB/s for ${o.seconds} s...\n`);
  const dropped = await writeFor(o.seconds, o.rate, pageCache);
  await sleep(5000);
  process.stdout.write('keeping them...\n');
  const kept = await writeFor(o.seconds, o.rate, null);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const rows = dropped.map((d, i) => {
    const k = kept[i];
    return `| ${d.at.toFixed(0)} | ${d.writtenGB.toFixed(2)} | ${d.sysCores.toFixed(3)} | ${d.cachedGB.toFixed(1)} | ${k?.sysCores.toFixed(3) ?? '-'} | ${k?.cachedGB.toFixed(1) ?? '-'} |`;
  });
  const cpus = os.cpus();
  const report = [
    `# Page cache of written logs — ${startedAt.toISOString()}`,
    '',
    `Command: \`npm run bench:page-cache --${argv.length ? ` ${argv.join(' ')}` : ''}\``,
    `Machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`,
    '',
    `One file, ${o.rate} appends of 64 KiB per second (${((o.rate * CHUNK) / 1e6).toFixed(0)} MB/s), fdatasync every second; the writer's system CPU per 5 s.`,
    '',
    '| s | GB written | sys cores, pages dropped | page cache GB | sys cores, pages kept | page cache GB |',
    '|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `Median system CPU: **${median(dropped.map((s) => s.sysCores)).toFixed(3)} cores dropped**, **${median(kept.map((s) => s.sysCores)).toFixed(3)} kept**; over the last third: ${median(dropped.slice(-Math.ceil(dropped.length / 3)).map((s) => s.sysCores)).toFixed(3)} against ${median(kept.slice(-Math.ceil(kept.length / 3)).map((s) => s.sysCores)).toFixed(3)}.`,
    '',
  ].join('\n');
  const written = await writeReport('page-cache', startedAt, report, { options: o, dropped, kept });
  process.stdout.write(`${report}\nreport: ${written}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`page-cache-bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

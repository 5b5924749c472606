/**
 * Log batches acknowledged per second by the log shipper.
 *
 *   npm run bench:log-shipper [-- --seconds 5 --connections 4 --window 16 --apps 20 --lines 11 --fsync interval]
 *
 * Starts the shipper as a separate process (as in production) on a free port with a
 * temporary LOG_DIR, then `connections` router-like senders (test-support/log-sender.ts) each
 * keep `window` batches in flight for `seconds`. A batch holds `apps` sections of `lines`
 * access-log lines (~290 bytes each; the defaults make ~64 KB, a router's batch). Prints
 * batches/s, MB/s, the shipper's CPU time per batch (from its /metrics) and how many write
 * calls the batches took, then removes the files.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AckStatus, encodeBatch } from '../proto/log-batch.js';
import { fileURLToPath } from 'node:url';
import { LogSender } from '../test-support/log-sender.js';

interface Options {
  seconds: number;
  connections: number;
  window: number;
  apps: number;
  lines: number;
  fsync: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 5, connections: 4, window: 16, apps: 20, lines: 11, fsync: 'interval' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '') ?? '';
    const raw = argv[i + 1] ?? '';
    if (key === 'fsync' && ['never', 'interval', 'always'].includes(raw)) opts.fsync = raw;
    else if (key in opts && key !== 'fsync' && /^[0-9]+$/.test(raw) && Number(raw) > 0) (opts as unknown as Record<string, number>)[key] = Number(raw);
    else throw new Error(`bad option ${argv[i]} ${raw} (see the comment at the top of loadtest/log-shipper-bench.ts)`);
  }
  opts.seconds = Math.min(opts.seconds, 60);
  return opts;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function section(app: string, lines: number): Buffer {
  let text = '';
  for (let i = 0; i < lines; i++) {
    text += `${JSON.stringify({ at: 1763860800000 + i, code: '-', app, method: 'GET', host: `${app}.apps.example.com`, path: `/items/${i}?page=2`, status: 200, bytes_in: 0, bytes_out: 5123, connect_ms: 1, service_ms: 12, request_id: '01JD6XG2Q8V3M5N7P9R1T3W5Y7', container: 'web-1', client_ip: '203.0.113.7', protocol: 'http/1.1' })}\n`;
  }
  return Buffer.from(text);
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'log-shipper-bench-'));
  const port = await freePort();
  const token = 'bench-token-0123456789';
  const child = spawn(process.execPath, [fileURLToPath(new URL('../log-shipper/src/main.js', import.meta.url))], {
    env: { PATH: process.env['PATH'] ?? '', LOG_SHIPPER_PORT: String(port), LOG_SHIPPER_TOKEN: token, LOG_DIR: dir, LOG_LEVEL: 'warn', LOG_FSYNC: opts.fsync, LOG_ROTATE_BYTES: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    for (let i = 0; ; i++) {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok).catch(() => false)) === true) break;
      if (i > 100) throw new Error('the shipper did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    const template = Array.from({ length: opts.apps }, (_, i) => ({ app: `app-${i}`, data: section(`app-${i}`, opts.lines) }));
    const frameBytes = encodeBatch(1, template).length;
    const cpuBefore = await metric(port, 'process_cpu_seconds_total');
    let acked = 0;
    let refused = 0;
    const started = performance.now();
    const deadline = started + opts.seconds * 1000;
    await Promise.all(
      Array.from({ length: opts.connections }, async (_, c) => {
        const sender = await LogSender.connect({ port, token, router: `bench-${c}` });
        const inflight: Array<Promise<void>> = [];
        for (let seq = 1; performance.now() < deadline; seq++) {
          inflight.push(sender.send(seq, template).then((ack) => void (ack.status === AckStatus.OK ? acked++ : refused++)));
          if (inflight.length >= opts.window) await inflight.shift();
        }
        await Promise.all(inflight);
        await sender.close();
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const cpu = (await metric(port, 'process_cpu_seconds_total')) - cpuBefore;
    const writes = await metric(port, 'log_shipper_file_writes_total');
    console.log(`log shipper, ${opts.connections} connections × ${opts.window} in flight, ${opts.apps} apps × ${opts.lines} lines = ${frameBytes} B a batch, LOG_FSYNC=${opts.fsync}, ${os.availableParallelism()} cores, load ${os.loadavg()[0]!.toFixed(1)}`);
    console.log(`  ${(acked / seconds).toFixed(0)} batches/s acked OK (${((acked * frameBytes) / seconds / 1e6).toFixed(1)} MB/s), ${refused} refused`);
    console.log(`  shipper CPU ${((cpu / acked) * 1e6).toFixed(0)} µs a batch (${((cpu / seconds) * 100).toFixed(0)}% of a core); ${writes} write calls for ${acked * opts.apps} app chunks`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

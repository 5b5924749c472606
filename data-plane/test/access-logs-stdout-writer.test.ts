import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { CutBatch } from '../src/access-logs/batcher.js';
import { DropReport } from '../src/access-logs/drop-report.js';
import { encodeAccessLine } from '../src/access-logs/line-encoder.js';
import { AccessLogMetrics } from '../src/access-logs/metrics.js';
import { StdoutWriter } from '../src/access-logs/stdout-writer.js';
import { RouterMetrics } from '../src/metrics.js';
import { metricValue, numberedLine } from '../../test-support/access-logs.js';
import { eventually } from '../../test-support/router.js';

/** A FIFO: a real pipe with a (blocking) descriptor to write to and a stream to read, like a container's stdout. */
function fifo(): { fd: number; reader: net.Socket; text: () => string; close(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'alog-'));
  const file = path.join(dir, 'stdout');
  execFileSync('mkfifo', [file]);
  // A non-blocking open of the read side returns at once, so the write side's open finds a reader.
  const readFd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const fd = fs.openSync(file, 'w');
  const reader = new net.Socket({ fd: readFd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  reader.on('data', (c: Buffer) => chunks.push(c));
  return {
    fd,
    reader,
    text: () => Buffer.concat(chunks).toString('latin1'),
    close() {
      reader.destroy();
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function batchOf(from: number, count: number): CutBatch {
  let text = '';
  for (let i = from; i < from + count; i++) text += encodeAccessLine(numberedLine('alpha', i));
  return { sections: [{ app: 'alpha', data: Buffer.from(text, 'latin1') }], lines: [count], lineCount: count, bodyBytes: text.length + 16 };
}

function parts(): { metrics: AccessLogMetrics; drops: DropReport } {
  const metrics = new AccessLogMetrics(new RouterMetrics(10));
  return { metrics, drops: new DropReport(metrics, pino({ level: 'silent' })) };
}

/** A reader in another process that keeps falling behind (1 KiB reads, pauses), copying the FIFO to a file. */
const SLOW_READER = `
const fs = require('fs');
const fd = fs.openSync(process.argv[1], 'r');
const out = fs.openSync(process.argv[2], 'w');
const buf = Buffer.alloc(1024);
const step = () => {
  const n = fs.readSync(fd, buf, 0, buf.length, null);
  if (n === 0) process.exit(0);
  fs.writeSync(out, buf, 0, n);
  setTimeout(step, Math.random() < 0.1 ? 1 : 0);
};
step();
`;

test('a slow pipe reader: access lines never interleave with the process\'s own synchronous writes to the same pipe', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'alog-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'stdout');
  const copy = path.join(dir, 'copy');
  execFileSync('mkfifo', [file]);
  const reader = spawn(process.execPath, ['-e', SLOW_READER, file, copy], { stdio: 'ignore' });
  t.after(() => void (reader.exitCode === null && reader.kill('SIGKILL')));
  const readerDone = new Promise((r) => reader.once('exit', r));
  const fd = fs.openSync(file, 'w');
  const { metrics, drops } = parts();
  const writer = new StdoutWriter(fd, 64 * 1024 * 1024, metrics, drops, pino({ level: 'silent' }));
  // What pino does with the router's own log lines: synchronous writes from the main thread.
  const service = '{"level":30,"msg":"the router\'s own log line, written synchronously like pino does"}\n';
  let lines = 0;
  let serviceLines = 0;
  const started = performance.now();
  while (performance.now() - started < 1500 && lines < 8000) {
    writer.enqueue(batchOf(lines, 200));
    lines += 200;
    for (let i = 0; i < 5; i++) {
      fs.writeSync(fd, service);
      serviceLines++;
      await new Promise((r) => setImmediate(r));
    }
  }
  await writer.close(20_000);
  fs.closeSync(fd);
  await readerDone;
  const all = fs.readFileSync(copy, 'latin1').split('\n').slice(0, -1);
  for (const l of all) assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l.slice(0, 120)}`);
  assert.equal(all.length, lines + serviceLines);
  assert.equal(all.filter((l) => l.includes('"protocol"')).length, lines);
  assert.equal(await metricValue(metrics.shippedLines), lines);
});

test('a reader that stops: what waits is bounded by the spool, the oldest batches are dropped and counted', async (t) => {
  const pipe = fifo();
  t.after(() => pipe.close());
  pipe.reader.pause();
  const { metrics, drops } = parts();
  const writer = new StdoutWriter(pipe.fd, 256 * 1024, metrics, drops, pino({ level: 'silent' }));
  // Far more than the pipe (64 KiB) and the spool (256 KiB) hold together.
  const batches = 200;
  for (let b = 0; b < batches; b++) {
    writer.enqueue(batchOf(b * 100, 100));
    if (b % 10 === 0) await new Promise((r) => setImmediate(r));
  }
  const dropped = await metricValue(metrics.dropped, { app: 'alpha', reason: 'spool_full' });
  assert.ok(dropped > 0, 'some batches were dropped');
  assert.ok((await metricValue(metrics.spoolBytes)) <= 256 * 1024 + batchOf(0, 100).sections[0]!.data.length);
  pipe.reader.resume();
  await writer.close(10_000);
  await eventually(async () => (await metricValue(metrics.shippedLines)) + dropped === batches * 100, 10_000, 20);
  await eventually(async () => pipe.text().split('\n').length - 1 === batches * 100 - dropped, 10_000, 20);
  // The last batch made it: the newest are kept.
  assert.ok(pipe.text().includes(`"path":"/n/${batches * 100 - 1}"`));
});

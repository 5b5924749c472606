import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../proto/config/env.js';
import { FileSlots } from '../src/backends/file-slots.js';
import { loadLogShipperConfig } from '../src/config.js';
import { RouterSeqs } from '../src/ingest/router-seqs.js';
import { acceptedLines, splitBatch } from '../src/ingest/split-lines.js';
import { LineRings } from '../src/tail/line-ring.js';
import { readLastLines } from '../src/tail/read-last-lines.js';
import { toSse } from '../src/tail/subscriber.js';
import { lines } from '../../test-support/log-sender.js';

test('split: a section whose lines are all good is passed on as the same view, not a copy', () => {
  const batch = Buffer.from(`xx${lines('a', 0, 3)}yy`);
  const section = batch.subarray(2, batch.length - 2);
  const kept = acceptedLines(section);
  assert.equal(kept.data, section);
  assert.equal(kept.data.buffer, batch.buffer);
  assert.deepEqual([kept.lines, kept.rejected], [3, 0]);
});

test('split: bad lines are cut out exactly, wherever they are', () => {
  const good = lines('a', 0, 4).split('\n').slice(0, 4);
  const cases: Array<[string, string, number, number]> = [
    [`bad\n${good[0]}\n${good[1]}\n`, `${good[0]}\n${good[1]}\n`, 2, 1],
    [`${good[0]}\nbad\n${good[1]}\n`, `${good[0]}\n${good[1]}\n`, 2, 1],
    [`${good[0]}\n${good[1]}\nbad\n`, `${good[0]}\n${good[1]}\n`, 2, 1],
    [`${good[0]}\n${good[1]}`, `${good[0]}\n`, 1, 1],
    [`\n\n${good[0]}\n\n`, `${good[0]}\n`, 1, 3],
    ['{"a":"\u0001"}\n{no\n', '', 0, 2],
    [`${good[0]}\n{"x":"${'y'.repeat(70_000)}"}\n${good[3]}\n`, `${good[0]}\n${good[3]}\n`, 2, 1],
  ];
  for (const [input, output, accepted, rejected] of cases) {
    const kept = acceptedLines(Buffer.from(input));
    assert.equal(kept.data.toString(), output, input.slice(0, 40));
    assert.deepEqual([kept.lines, kept.rejected], [accepted, rejected], input.slice(0, 40));
  }
  // Many bad lines at once (past the scratch array's first size).
  const mixed = Array.from({ length: 3000 }, (_, i) => (i % 2 === 0 ? `{"n":${i}}` : 'x')).join('\n') + '\n';
  const kept = acceptedLines(Buffer.from(mixed));
  assert.deepEqual([kept.lines, kept.rejected], [1500, 1500]);
  assert.equal(kept.data.toString(), Array.from({ length: 1500 }, (_, i) => `{"n":${i * 2}}\n`).join(''));
});

test('split: an app sent twice in one batch becomes one chunk; apps with no good line are left out', () => {
  const split = splitBatch([
    { app: 'a', data: Buffer.from('{"n":1}\n') },
    { app: 'b', data: Buffer.from('bad\n') },
    { app: 'a', data: Buffer.from('{"n":2}\n') },
    { app: 'c', data: Buffer.alloc(0) },
  ]);
  assert.deepEqual(
    split.apps.map((a) => [a.app, a.data.toString(), a.lines]),
    [['a', '{"n":1}\n{"n":2}\n', 2]],
  );
  assert.deepEqual([split.accepted, split.rejected], [2, 1]);
});

test('seqs: done means acknowledged OK; an UNAVAILABLE seq below a later OK stays to be written', () => {
  const seqs = new RouterSeqs();
  assert.equal(seqs.isDone(0), false);
  seqs.settle(1, true);
  seqs.settle(2, false);
  seqs.settle(3, true);
  assert.deepEqual([1, 2, 3, 4].map((n) => seqs.isDone(n)), [true, false, true, false]);
  seqs.settle(2, true);
  assert.equal(seqs.isDone(2), true);
});

test('readLastLines: across chunk boundaries, without a partial last line, bounded in bytes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'read-last-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'f');
  const text = lines('a', 0, 5000, 40); // ~ 330 KB: several 64 KB chunks
  await writeFile(file, `${text}{"partial":`);
  assert.equal((await readLastLines(file, 3)).toString(), lines('a', 4997, 3, 40));
  assert.equal((await readLastLines(file, 2000)).toString(), lines('a', 3000, 2000, 40));
  assert.equal((await readLastLines(file, 10_000)).toString(), text);
  assert.equal((await readLastLines(file, 0)).length, 0);
  assert.equal((await readLastLines(join(dir, 'missing'), 5)).length, 0);
  // The byte bound wins over the line count, and the answer still starts on a whole line.
  const bounded = (await readLastLines(file, 10_000, 1000)).toString();
  assert.ok(bounded.length <= 1000 && bounded.length > 0);
  assert.ok(text.endsWith(bounded));
  assert.ok(bounded.startsWith('{"app"'));
  await writeFile(file, 'no newline at all');
  assert.equal((await readLastLines(file, 5)).length, 0);
  await writeFile(file, '{"only":1}\n');
  assert.equal((await readLastLines(file, 5)).toString(), '{"only":1}\n');
});

test('rings: the last lines per app, bounded per app and in total bytes', () => {
  const rings = new LineRings(10, 1_000_000);
  rings.append('a', Buffer.from(lines('a', 0, 4)), 4);
  rings.append('a', Buffer.from(lines('a', 4, 25)), 25);
  rings.append('a', Buffer.from(lines('a', 29, 3)), 3);
  assert.equal(rings.last('a', 100).toString(), lines('a', 22, 10));
  assert.equal(rings.last('a', 4).toString(), lines('a', 28, 4));
  assert.equal(rings.last('b', 4).length, 0);
  // The batch buffer may be reused by the caller: the ring holds a copy.
  const reused = Buffer.from(lines('c', 0, 1));
  rings.append('c', reused, 1);
  reused.fill(0x20);
  assert.equal(rings.last('c', 1).toString(), lines('c', 0, 1));
  // 250 bytes in all (lines are 20 bytes): the least recently written app is forgotten first.
  const small = new LineRings(100, 250);
  small.append('old', Buffer.from(lines('old', 0, 5)), 5);
  small.append('new', Buffer.from(lines('new', 0, 5)), 5);
  small.append('new', Buffer.from(lines('new', 5, 5)), 5);
  assert.equal(small.last('old', 5).length, 0);
  assert.equal(small.last('new', 10).toString(), lines('new', 0, 10));
});

test('SSE framing: one event per line', () => {
  assert.equal(toSse(Buffer.from('{"a":1}\n{"b":2}\n'), 2).toString(), 'data: {"a":1}\n\ndata: {"b":2}\n\n');
});

test('config: the token is required; backends and fsync are checked; defaults are the documented ones', () => {
  assert.throws(() => loadLogShipperConfig({}), (err: unknown) => err instanceof ConfigError && /LOG_SHIPPER_TOKEN must be set/.test(err.message));
  assert.throws(() => loadLogShipperConfig({ LOG_SHIPPER_TOKEN: 't', LOG_BACKENDS: 'file,s3' }), /LOG_BACKENDS: unknown backend "s3"/);
  assert.throws(() => loadLogShipperConfig({ LOG_SHIPPER_TOKEN: 't', LOG_FSYNC: 'sometimes' }), /LOG_FSYNC/);
  assert.throws(() => loadLogShipperConfig({ LOG_SHIPPER_TOKEN: 't', LOG_QUEUE_NAME: 'a:b' }), /LOG_QUEUE_NAME/);
  // A secret is never echoed in the error.
  assert.doesNotMatch(String((() => { try { loadLogShipperConfig({ LOG_SHIPPER_TOKEN: ' , ' }); } catch (e) { return (e as Error).message; } return ''; })()), / , /);
  const config = loadLogShipperConfig({ LOG_SHIPPER_TOKEN: 'a, b' });
  assert.deepEqual(
    {
      host: config.host,
      port: config.port,
      tokens: config.tokens,
      backends: config.backends,
      logDir: config.logDir,
      maxOpenFiles: config.maxOpenFiles,
      rotateBytes: config.rotateBytes,
      rotateKeep: config.rotateKeep,
      fsync: config.fsync,
      fsyncIntervalMs: config.fsyncIntervalMs,
      tailBufferLines: config.tailBufferLines,
      queueName: config.queueName,
    },
    {
      host: '127.0.0.1',
      port: 5000,
      tokens: ['a', 'b'],
      backends: ['file'],
      logDir: './logs',
      maxOpenFiles: 1024,
      rotateBytes: 100 * 1024 * 1024,
      rotateKeep: 5,
      fsync: 'interval',
      fsyncIntervalMs: 1000,
      tailBufferLines: 1000,
      queueName: 'router-logs',
    },
  );
  assert.deepEqual(loadLogShipperConfig({ LOG_SHIPPER_TOKEN: 't', LOG_BACKENDS: 'bullmq, file, bullmq' }).backends, ['bullmq', 'file']);
});

test('file slots: a hard bound; a slot given back goes to the oldest waiter; starvation asks for an idle file', async () => {
  let starved = 0;
  const slots = new FileSlots(2, () => starved++);
  assert.equal(slots.acquire(), null);
  assert.equal(slots.acquire(), null);
  const order: number[] = [];
  const w1 = slots.acquire()!.then(() => order.push(1));
  const w2 = slots.acquire()!.then(() => order.push(2));
  assert.equal(starved, 2);
  assert.equal(slots.inUse, 2);
  slots.release();
  slots.release();
  await Promise.all([w1, w2]);
  assert.deepEqual(order, [1, 2]);
  assert.equal(slots.inUse, 2);
  slots.release();
  assert.equal(slots.inUse, 1);
});

test('filesystem sync: many dirty files take one syncfs; when `sync` cannot run, they keep their dirt and get an fdatasync each', async (t) => {
  const { FilesystemSync } = await import('../src/backends/filesystem-sync.js');
  const { ShipperMetrics } = await import('../src/metrics.js');
  const { pino } = await import('pino');
  const dir = await mkdtemp(join(tmpdir(), 'fs-sync-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const metrics = new ShipperMetrics();
  const sync = new FilesystemSync(dir, metrics, pino({ level: 'silent' }));
  const files = Array.from({ length: 20 }, () => ({
    dirty: true,
    own: 0,
    covered: 0,
    syncIfDirty() { if (this.dirty) { this.own++; this.dirty = false; } },
    willSync() { return () => void this.covered++; },
  }));
  const value = async (name: string): Promise<number> => (await metrics.registry.getSingleMetric(name)!.get()).values.reduce((n, v) => n + v.value, 0);

  sync.tick(files);
  assert.ok(files.every((f) => !f.dirty && f.own === 0), 'cleared for the syncfs, no fdatasync of their own');
  const { eventually } = await import('../../test-support/router.js');
  await eventually(async () => (await value('log_shipper_filesystem_syncs_total')) === 1, 5000, 10);
  assert.ok(files.every((f) => f.covered === 1), 'each file told once the syncfs covered it');

  const path = process.env['PATH'];
  process.env['PATH'] = dir; // no `sync` there
  t.after(() => (process.env['PATH'] = path));
  for (const f of files) f.dirty = true;
  sync.tick(files);
  await eventually(async () => (await value('log_shipper_file_write_errors_total')) === 1, 5000, 10);
  await eventually(async () => files.every((f) => f.dirty), 5000, 10);
  assert.equal(sync.available, false);
  assert.ok(files.every((f) => f.covered === 1), 'a failed syncfs covers nothing');
  sync.tick(files);
  assert.ok(files.every((f) => !f.dirty && f.own === 1), 'each file synced on its own after the failure');
  assert.equal(await value('log_shipper_filesystem_syncs_total'), 1);
});

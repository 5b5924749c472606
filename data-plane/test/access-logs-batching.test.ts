import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { UNROUTED_SECTION, batchFrameBytes, decodeSections, encodeBatch } from '../../proto/log-batch.js';
import { Batcher, type CutBatch } from '../src/access-logs/batcher.js';
import { eventually } from '../../test-support/router.js';

const lineOf = (app: string, i: number): string => `{"app":"${app}","i":${i}}\n`;

function collect(t: TestContext, maxBytes: number, maxMs: number): { batcher: Batcher; batches: CutBatch[] } {
  const batches: CutBatch[] = [];
  const batcher = new Batcher({ maxBytes, maxMs, onBatch: (b) => batches.push(b) });
  t.after(() => batcher.close());
  return { batcher, batches };
}

test('lines of several apps go to one section per app, in order; no app goes to the unrouted section', (t) => {
  const { batcher, batches } = collect(t, 65536, 60_000);
  const apps = ['alpha', 'beta', '-', 'alpha', 'gamma', '-', 'beta', 'alpha'];
  apps.forEach((app, i) => batcher.append(app, lineOf(app, i)));
  assert.equal(batches.length, 0, 'nothing is cut before a bound is reached');
  batcher.flush();
  batcher.close();
  assert.equal(batches.length, 1);
  const b = batches[0]!;
  const body = encodeBatch(7, b.sections).subarray(5);
  const sections = decodeSections(body);
  const byApp = new Map(sections.map((s) => [s.app, s.data.toString('latin1')]));
  assert.deepEqual([...byApp.keys()].sort(), ['-', 'alpha', 'beta', 'gamma']);
  assert.equal(byApp.get('alpha'), lineOf('alpha', 0) + lineOf('alpha', 3) + lineOf('alpha', 7));
  assert.equal(byApp.get(UNROUTED_SECTION), lineOf('-', 2) + lineOf('-', 5));
  assert.equal(b.lineCount, apps.length);
  assert.deepEqual(
    Object.fromEntries(b.sections.map((s, i) => [s.app, b.lines[i]])),
    { alpha: 3, beta: 2, '-': 2, gamma: 1 },
  );
  assert.equal(b.bodyBytes, body.length, 'the batch knows its BATCH body size');
});

test('a batch is cut at the byte bound without waiting for the timer, never over it', async (t) => {
  const maxBytes = 1024;
  const { batcher, batches } = collect(t, maxBytes, 60_000);
  let appended = 0;
  for (let i = 0; i < 300; i++) {
    batcher.append(i % 3 === 0 ? 'one' : 'two', lineOf(i % 3 === 0 ? 'one' : 'two', i));
    appended++;
  }
  // Batches cut by size are handed on from a setImmediate, not inside append.
  assert.equal(batches.length, 0);
  await eventually(async () => batches.length > 0, 2000);
  assert.ok(batches.length >= 3, `${batches.length} batches`);
  for (const b of batches) {
    const dataBytes = b.sections.reduce((n, s) => n + s.data.length, 0);
    const frameBody = batchFrameBytes(b.sections.length, b.sections.reduce((n, s) => n + s.app.length, 0), dataBytes) - 5;
    assert.equal(frameBody, b.bodyBytes);
    assert.ok(b.bodyBytes <= maxBytes, `${b.bodyBytes} <= ${maxBytes}`);
    assert.ok(b.bodyBytes > maxBytes - 40, 'full up to one line');
  }
  batcher.flush();
  batcher.close();
  assert.equal(batches.reduce((n, b) => n + b.lineCount, 0), appended, 'every line is in exactly one batch');
  // Order is kept across batches.
  const seen = batches.flatMap((b) => b.sections.flatMap((s) => s.data.toString('latin1').split('\n').slice(0, -1).map((l) => (JSON.parse(l) as { i: number }).i)));
  for (const app of [0, 1]) {
    const mine = seen.filter((i) => (i % 3 === 0 ? 0 : 1) === app);
    assert.deepEqual(mine, [...mine].sort((a, b) => a - b));
  }
});

test('a line as large as a batch goes alone', async (t) => {
  const { batcher, batches } = collect(t, 1024, 60_000);
  batcher.append('a', lineOf('a', 1));
  batcher.append('a', `{"big":"${'x'.repeat(2000)}"}\n`);
  batcher.append('a', lineOf('a', 2));
  await eventually(async () => batches.length === 2, 2000);
  assert.equal(batches[0]!.lineCount, 1);
  assert.equal(batches[1]!.lineCount, 1);
  assert.ok(batches[1]!.bodyBytes > 2000);
  batcher.flush();
  batcher.close();
  assert.equal(batches.length, 3);
});

test('a batch is cut at the time bound with no further line', async (t) => {
  const { batcher, batches } = collect(t, 65536, 30);
  batcher.append('alpha', lineOf('alpha', 1));
  batcher.append('beta', lineOf('beta', 2));
  await eventually(async () => batches.length === 1, 5000);
  assert.equal(batches[0]!.lineCount, 2);
  // The next line starts a new batch and a new timer.
  batcher.append('alpha', lineOf('alpha', 3));
  await eventually(async () => batches.length === 2, 5000);
  assert.equal(batches[1]!.lineCount, 1);
  batcher.close();
});

test('an app name a section cannot carry goes to the unrouted section (the line keeps its app)', (t) => {
  const { batcher, batches } = collect(t, 65536, 60_000);
  batcher.append('Not_Valid!', lineOf('x', 1));
  batcher.append('-', lineOf('-', 2));
  batcher.flush();
  batcher.close();
  assert.equal(batches[0]!.sections.length, 1);
  assert.equal(batches[0]!.sections[0]!.app, UNROUTED_SECTION);
  assert.equal(batches[0]!.lines[0], 2);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AckStatus } from '../../proto/log-batch.js';
import { lineNumber, metricValue, numberedLine, shipTo } from '../../test-support/access-logs.js';
import { LogReceiver } from '../../test-support/log-receiver.js';
import { eventually } from '../../test-support/router.js';

const APPS = ['alpha', 'beta', '-'];
const appOf = (i: number): string => APPS[i % APPS.length]!;

/** Numbers seen at the receiver: each line's number, with its section, duplicates included. */
function received(receiver: LogReceiver): number[] {
  return receiver.lines().map(({ app, line }) => {
    assert.equal(app, line['app'] === '-' ? '-' : line['app'], 'a line is in its app\'s section');
    return lineNumber(line);
  });
}

function assertExactlyOnce(seen: number[], total: number): void {
  assert.equal(new Set(seen).size, total, 'every line arrived');
  assert.deepEqual([...new Set(seen)].sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i));
}

test('lines arrive once each, per app, in batches with growing seq from one router id', async (t) => {
  const receiver = await LogReceiver.start();
  t.after(() => receiver.close());
  const { shipping, metrics } = shipTo(t, receiver);
  const total = 500;
  for (let i = 0; i < total; i++) shipping.sink(numberedLine(appOf(i), i));
  await eventually(async () => receiver.lineCount() >= total, 5000);
  const seen = received(receiver);
  assert.equal(seen.length, total, 'no duplicate without a failure');
  assertExactlyOnce(seen, total);
  assert.equal(new Set(receiver.batches.map((b) => b.router)).size, 1);
  const seqs = receiver.batches.map((b) => b.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
  assert.equal(receiver.hellos.length, 1, 'one persistent connection');
  await eventually(async () => (await metricValue(shipping.metrics.shippedLines)) === total, 2000);
  assert.equal(await metricValue(shipping.metrics.shippedBatches), seqs.length);
  assert.equal(await metricValue(shipping.metrics.acks, { status: 'ok' }), seqs.length);
  assert.equal(await metricValue(shipping.metrics.shipperUp), 1);
  assert.equal(await metricValue(shipping.metrics.spoolBytes), 0);
  assert.match(await metrics.registry.metrics(), /router_access_log_shipped_lines_total 500/);
});

test('receiver killed mid-stream and restarted on the same port: every line arrives; duplicates only from retransmitted batches', async (t) => {
  const receiver = await LogReceiver.start();
  t.after(() => receiver.close());
  receiver.ackDelayMs = 2; // keeps batches in flight when the receiver goes away
  const { shipping } = shipTo(t, receiver, { logBatchBytes: 8192 });
  const total = 3000;
  let restarted = false;
  for (let i = 0; i < total; i++) {
    shipping.sink(numberedLine(appOf(i), i));
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 2));
    if (i === 1000) await receiver.stop();
    if (i === 2000) {
      await receiver.restart();
      restarted = true;
    }
  }
  assert.ok(restarted);
  await eventually(async () => new Set(received(receiver)).size >= total, 10_000, 20);
  await eventually(async () => shipping.shipper!.pendingBatches === 0, 5000, 20);
  const seen = received(receiver);
  assertExactlyOnce(seen, total);
  const retransmitted = await metricValue(shipping.metrics.retransmitted);
  // Duplicates are whole batches sent again with their original seq.
  const bySeq = new Map<number, string>();
  let duplicateBatches = 0;
  for (const b of receiver.batches) {
    const text = JSON.stringify(b.sections);
    if (bySeq.has(b.seq)) {
      assert.equal(bySeq.get(b.seq), text, `seq ${b.seq} resent with the same lines`);
      duplicateBatches++;
    }
    bySeq.set(b.seq, text);
  }
  assert.ok(duplicateBatches <= retransmitted, `${duplicateBatches} duplicate batches <= ${retransmitted} retransmitted`);
  assert.ok(receiver.hellos.length >= 2, 'reconnected');
  assert.ok((await metricValue(shipping.metrics.reconnects)) >= 1);
  assert.equal(new Set(receiver.hellos).size, 1, 'the same router id across connections');
});

test('a connection dropped before an ack: the batch is resent with its seq, counted as retransmitted', async (t) => {
  const receiver = await LogReceiver.start();
  t.after(() => receiver.close());
  // Each connection takes 3 batches and acks only the first 2.
  receiver.dropAfter = 3;
  const { shipping } = shipTo(t, receiver, { logBatchMs: 10 });
  const total = 200;
  for (let i = 0; i < total; i++) {
    shipping.sink(numberedLine(appOf(i), i));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 15));
  }
  await eventually(async () => receiver.hellos.length >= 3, 10_000, 10);
  receiver.dropAfter = null;
  shipping.sink(numberedLine('alpha', total));
  await eventually(async () => shipping.shipper!.pendingBatches === 0, 10_000, 20);
  const seen = received(receiver);
  assertExactlyOnce(seen, total + 1);
  const seqCounts = new Map<number, number>();
  for (const b of receiver.batches) seqCounts.set(b.seq, (seqCounts.get(b.seq) ?? 0) + 1);
  const duplicateBatches = [...seqCounts.values()].reduce((n, c) => n + c - 1, 0);
  const retransmitted = await metricValue(shipping.metrics.retransmitted);
  assert.ok(duplicateBatches >= 1, 'the unacked batch was written twice');
  assert.ok(duplicateBatches <= retransmitted, `${duplicateBatches} duplicate batches <= ${retransmitted} retransmitted`);
});

test('UNAVAILABLE acks: the batches are sent again after a backoff, nothing lost, nothing twice', async (t) => {
  const receiver = await LogReceiver.start();
  t.after(() => receiver.close());
  receiver.unavailable = 3;
  const { shipping } = shipTo(t, receiver);
  const total = 400;
  for (let i = 0; i < total; i++) shipping.sink(numberedLine(appOf(i), i));
  await eventually(async () => shipping.shipper!.pendingBatches === 0 && receiver.lineCount() >= total, 10_000, 20);
  const seen = received(receiver);
  assert.equal(seen.length, total, 'UNAVAILABLE means nothing was written: no duplicate');
  assertExactlyOnce(seen, total);
  assert.equal(await metricValue(shipping.metrics.acks, { status: 'unavailable' }), 3);
  assert.equal(await metricValue(shipping.metrics.retransmitted), 0);
  assert.equal(receiver.hellos.length, 1, 'the connection stays up');
});

test('MALFORMED and TOO_LARGE acks: the batch is dropped and counted by app, the rest flows', async (t) => {
  const receiver = await LogReceiver.start();
  t.after(() => receiver.close());
  const { shipping, captured } = shipTo(t, receiver, { logBatchMs: 20, logBatchBytes: 65536 });
  const { metrics } = shipping;
  const dropped = (app: string): Promise<number> => metricValue(metrics.dropped, { app, reason: 'refused' });

  receiver.status = AckStatus.MALFORMED;
  receiver.statusCount = 1;
  for (let i = 0; i < 5; i++) shipping.sink(numberedLine(i < 3 ? 'alpha' : 'beta', i));
  await eventually(async () => (await metricValue(metrics.acks, { status: 'malformed' })) === 1, 5000);
  assert.equal(await dropped('alpha'), 3);
  assert.equal(await dropped('beta'), 2);

  receiver.status = AckStatus.TOO_LARGE;
  receiver.statusCount = 1;
  for (let i = 5; i < 9; i++) shipping.sink(numberedLine('-', i));
  await eventually(async () => (await metricValue(metrics.acks, { status: 'too_large' })) === 1, 5000);
  assert.equal(await dropped('-'), 4);

  for (let i = 9; i < 20; i++) shipping.sink(numberedLine('alpha', i));
  await eventually(async () => receiver.lineCount() === 11 && shipping.shipper!.pendingBatches === 0, 5000);
  assert.deepEqual(received(receiver), Array.from({ length: 11 }, (_, i) => 9 + i));
  const errors = captured.lines.filter((l) => l['msg'] === 'log-shipper refused an access-log batch (a router bug); dropped');
  assert.equal(errors.length, 2, 'one error per status and minute');
  assert.ok(errors.every((l) => l['level'] === 50));
});

test('spool overflow while the receiver is down: the oldest batches are dropped and counted per app exactly; the newest arrive later', async (t) => {
  const receiver = await LogReceiver.start();
  t.after(() => receiver.close());
  await receiver.stop();
  // Two labelled apps; a third folds into "_other".
  const { shipping, captured } = shipTo(t, receiver, { logBatchBytes: 1024, logSpoolBytes: 4096, logBatchMs: 5, maxApps: 2 });
  const apps = ['alpha', 'beta', 'gamma', '-'];
  const total = 400;
  const produced = new Map<string, number>();
  for (let i = 0; i < total; i++) {
    const app = apps[i % apps.length]!;
    produced.set(app, (produced.get(app) ?? 0) + 1);
    shipping.sink(numberedLine(app, i));
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  await eventually(async () => shipping.shipper!.pendingBatches > 0 && (await metricValue(shipping.metrics.lines)) === total, 5000, 10);
  assert.ok((await metricValue(shipping.metrics.spoolBytes)) <= 4096);
  await receiver.restart();
  await eventually(async () => shipping.shipper!.pendingBatches === 0, 10_000, 20);
  const seen = received(receiver);
  assert.ok(seen.length > 0 && seen.length < total, `${seen.length} delivered`);
  // The newest survive: what arrived is exactly the last lines.
  const sorted = [...seen].sort((a, b) => a - b);
  assert.deepEqual(sorted, Array.from({ length: seen.length }, (_, i) => total - seen.length + i));
  // Every line of every app is delivered or counted.
  const deliveredBy = new Map<string, number>();
  for (const { line } of receiver.lines()) deliveredBy.set(String(line['app']), (deliveredBy.get(String(line['app'])) ?? 0) + 1);
  const droppedAs = async (label: string): Promise<number> => metricValue(shipping.metrics.dropped, { app: label, reason: 'spool_full' });
  assert.equal((await droppedAs('alpha')) + (deliveredBy.get('alpha') ?? 0), produced.get('alpha'));
  assert.equal((await droppedAs('beta')) + (deliveredBy.get('beta') ?? 0), produced.get('beta'));
  assert.equal((await droppedAs('-')) + (deliveredBy.get('-') ?? 0), produced.get('-'));
  assert.equal((await droppedAs('_other')) + (deliveredBy.get('gamma') ?? 0), produced.get('gamma'), 'gamma is past ROUTER_METRICS_MAX_APPS: "_other"');
  assert.equal(await droppedAs('gamma'), 0);
  const warn = captured.lines.find((l) => l['msg'] === 'access-log lines dropped');
  assert.ok(warn, 'a warn line summarizes the drops');
  assert.equal(warn['level'], 40);
  assert.equal(captured.lines.filter((l) => l['msg'] === 'access-log lines dropped').length, 1, 'one summary per minute at most');
});

test('bad token: the refusal is logged as an error once, nothing is delivered, the client keeps retrying', async (t) => {
  const receiver = await LogReceiver.start({ token: 'the-right-token' });
  t.after(() => receiver.close());
  const { shipping, captured } = shipTo(t, receiver, { token: 'a-wrong-token' });
  for (let i = 0; i < 50; i++) shipping.sink(numberedLine('alpha', i));
  await eventually(async () => receiver.refused >= 3, 5000, 10);
  assert.equal(receiver.batches.length, 0);
  assert.equal(await metricValue(shipping.metrics.shipperUp), 0);
  const errors = captured.lines.filter((l) => l['level'] === 50);
  assert.equal(errors.length, 1, 'logged once per minute, not per attempt');
  assert.match(String(errors[0]!['msg']), /LOG_SHIPPER_TOKEN/);
  assert.equal(errors[0]!['message'], 'invalid token');
  assert.ok(!JSON.stringify(captured.lines).includes('a-wrong-token'), 'the token is never logged');
  assert.ok(shipping.shipper!.pendingBatches > 0, 'lines stay spooled for when the token is fixed');
});

test('close() sends the pending batch and waits for its ack; with the receiver down it gives up in time and counts the loss', async (t) => {
  const receiver = await LogReceiver.start();
  t.after(() => receiver.close());
  const up = shipTo(t, receiver, { logBatchMs: 60_000 });
  for (let i = 0; i < 7; i++) up.shipping.sink(numberedLine('alpha', i));
  await eventually(async () => up.shipping.shipper!.connected, 2000);
  await up.shipping.close();
  assert.equal(receiver.lineCount(), 7, 'delivered before close() resolved');

  await receiver.stop();
  const down = shipTo(t, receiver, { logBatchMs: 60_000 });
  for (let i = 0; i < 5; i++) down.shipping.sink(numberedLine('beta', i));
  const started = performance.now();
  await down.shipping.close(300);
  assert.ok(performance.now() - started < 5000, 'bounded');
  assert.equal(await metricValue(down.shipping.metrics.dropped, { app: 'beta', reason: 'shutdown' }), 5);
  down.shipping.sink(numberedLine('beta', 99));
  assert.equal(await metricValue(down.shipping.metrics.lines), 5, 'lines after close are ignored');
});

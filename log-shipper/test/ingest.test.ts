import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { dirname, join } from 'node:path';
import {
  AckStatus,
  FrameType,
  LOG_PROTOCOL_MAGIC,
  MAX_BATCH_BYTES,
  UNROUTED_SECTION,
  encodeBatch,
  encodeHello,
} from '../../proto/log-batch.js';
import { LogSender, lines } from '../../test-support/log-sender.js';
import { eventually } from '../../test-support/router.js';
import { SHIPPER_TOKEN, startTestShipper } from '../../test-support/log-shipper.js';

const APPS = ['shop', 'blog', 'api-2'];

function numbers(text: string, app: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as { app: string; n: number })
    .map((l) => {
      assert.equal(l.app, app);
      return l.n;
    });
}

test('N batches of k lines per app: every line in its app file, in order, one write per app per batch', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const N = 40;
  const k = 25;
  for (let b = 0; b < N; b++) {
    const ack = await sender.send(b + 1, APPS.map((app) => ({ app, data: lines(app, b * k, k) })));
    assert.deepEqual(ack, { seq: b + 1, status: AckStatus.OK, accepted: APPS.length * k, rejected: 0, message: '' });
  }
  for (const app of APPS) assert.deepEqual(numbers(await s.read(app), app), Array.from({ length: N * k }, (_, i) => i));
  // Sequential batches: nothing queues behind a write, so exactly one write per app per batch.
  assert.equal(await s.metric('log_shipper_file_writes_total'), N * APPS.length);
  assert.equal(await s.metric('log_shipper_file_lines_written_total'), N * k * APPS.length);
  assert.equal(await s.metric('log_shipper_acks_total', { status: 'ok' }), N);
  assert.equal(await s.metric('log_shipper_lines_received_total', { result: 'accepted' }), N * k * APPS.length);
  assert.equal(await s.metric('log_shipper_backend_batches_total', { backend: 'file' }), N);
  await sender.close();
});

test('pipelined batches from two routers: acks in order, each router’s lines in order, never more writes than app chunks', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const a = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN, router: 'router-a' });
  const b = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN, router: 'router-b' });
  const N = 60;
  const k = 10;
  const acks: Array<Promise<unknown>> = [];
  for (let i = 0; i < N; i++) {
    // Sent without waiting: up to N in flight per connection, beyond the shipper's window.
    acks.push(a.send(i, [{ app: 'shared', data: lines('shared', i * k, k).replace(/"n"/g, '"src":"a","n"') }, { app: 'only-a', data: lines('only-a', i * k, k) }]));
    acks.push(b.send(i, [{ app: 'shared', data: lines('shared', 100_000 + i * k, k).replace(/"n"/g, '"src":"b","n"') }]));
  }
  const results = (await Promise.all(acks)) as Array<{ status: number }>;
  assert.ok(results.every((r) => r.status === AckStatus.OK));
  assert.deepEqual(numbers(await s.read('only-a'), 'only-a'), Array.from({ length: N * k }, (_, i) => i));
  const shared = (await s.read('shared')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { src: string; n: number });
  assert.equal(shared.length, 2 * N * k);
  assert.deepEqual(shared.filter((l) => l.src === 'a').map((l) => l.n), Array.from({ length: N * k }, (_, i) => i));
  assert.deepEqual(shared.filter((l) => l.src === 'b').map((l) => l.n), Array.from({ length: N * k }, (_, i) => 100_000 + i));
  assert.ok((await s.metric('log_shipper_file_writes_total')) <= 3 * N);
  await Promise.all([a.close(), b.close()]);
});

test('a batch with a bad line: the other lines are written, the ack counts rejected=1', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const good = lines('shop', 0, 3);
  const [l0, l1, l2] = good.split('\n');
  const ack = await sender.send(1, [
    { app: 'shop', data: `${l0}\nnot json at all\n${l1}\n${l2}\n` },
    { app: 'blog', data: lines('blog', 0, 2) },
  ]);
  assert.equal(ack.status, AckStatus.OK);
  assert.equal(ack.accepted, 5);
  assert.equal(ack.rejected, 1);
  assert.equal(await s.read('shop'), good);
  assert.equal(await s.read('blog'), lines('blog', 0, 2));
  // A line cut short (no '\n') and a control character are rejected too.
  const ack2 = await sender.send(2, [{ app: 'shop', data: `{"n":3,"x":"a\tb"}\n${lines('shop', 4, 1)}{"n":5}` }]);
  assert.deepEqual([ack2.accepted, ack2.rejected], [1, 2]);
  assert.equal(await s.read('shop'), good + lines('shop', 4, 1));
  assert.equal(await s.metric('log_shipper_lines_received_total', { result: 'rejected' }), 3);
  await sender.close();
});

test('lines of requests that reached no app go to _unrouted/router.log', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const ack = await sender.send(1, [{ app: UNROUTED_SECTION, data: '{"app":"-","code":"UNKNOWN_HOST"}\n' }]);
  assert.equal(ack.status, AckStatus.OK);
  assert.equal(await s.read('_unrouted'), '{"app":"-","code":"UNKNOWN_HOST"}\n');
  await sender.close();
});

test('traversal and invalid app names: MALFORMED, nothing written anywhere, the connection stays up', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  let seq = 0;
  for (const app of ['../escape', '..', '.', 'a/b', '/etc', 'UPPER', '_unrouted', '-a', 'a'.repeat(64), 'x\u0000y']) {
    // A good section first: the whole batch is refused, not just the bad section.
    const ack = await sender.sendRaw(encodeBatch(++seq, [{ app: 'fine', data: Buffer.from('{"a":1}\n') }, { app, data: Buffer.from('{"a":1}\n') }]), seq);
    assert.equal(ack.status, AckStatus.MALFORMED, app);
    assert.match(ack.message, /invalid app name/);
  }
  // A section length running past the end of the batch.
  const truncated = encodeBatch(++seq, [{ app: 'fine', data: Buffer.from('{"a":1}\n') }]);
  truncated.writeUInt32BE(truncated.readUInt32BE(0) - 2, 0);
  assert.equal((await sender.sendRaw(truncated.subarray(0, truncated.length - 2), seq)).status, AckStatus.MALFORMED);
  assert.deepEqual(await readdir(s.dir), []);
  assert.deepEqual(await readdir(dirname(s.dir)), ['logs']);
  assert.equal(await s.metric('log_shipper_batches_refused_total', { reason: 'malformed' }), seq);
  const ok = await sender.send(++seq, [{ app: 'fine', data: '{"a":2}\n' }]);
  assert.equal(ok.status, AckStatus.OK);
  assert.equal(await s.read('fine'), '{"a":2}\n');
  await sender.close();
});

test('an oversized batch is refused TOO_LARGE; the next batch on the same connection is OK', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const big = sender.send(7, [{ app: 'shop', data: lines('shop', 0, Math.ceil((MAX_BATCH_BYTES + 1000) / 20), 0) }]);
  const next = sender.send(8, [{ app: 'shop', data: lines('shop', 0, 2) }]);
  const [bigAck, nextAck] = await Promise.all([big, next]);
  assert.equal(bigAck.status, AckStatus.TOO_LARGE);
  assert.equal(bigAck.seq, 7);
  assert.deepEqual([nextAck.seq, nextAck.status, nextAck.accepted], [8, AckStatus.OK, 2]);
  assert.equal(await s.read('shop'), lines('shop', 0, 2));
  assert.equal(await s.metric('log_shipper_acks_total', { status: 'too_large' }), 1);
  await sender.close();
});

test('a bad token is answered ERROR and the connection closed; so are a missing HELLO and a silent router', async (t) => {
  const s = await startTestShipper({}, { helloTimeoutMs: 300 });
  t.after(() => s.close());
  const bad = LogSender.open({ port: s.port, token: 'wrong' });
  await assert.rejects(bad.ready, /invalid token/);
  await bad.closed;
  assert.equal(bad.error, 'invalid token');

  // A batch before HELLO.
  const early = net.connect(s.port, '127.0.0.1');
  const earlyFrames = collectFrames(early);
  early.write(Buffer.concat([LOG_PROTOCOL_MAGIC, encodeBatch(1, [{ app: 'shop', data: Buffer.from('{}\n') }])]));
  await new Promise((r) => early.once('close', r));
  assert.equal((await earlyFrames)[0]?.type, FrameType.ERROR);

  // Magic, then nothing: refused at the HELLO deadline.
  const silent = net.connect(s.port, '127.0.0.1');
  const silentFrames = collectFrames(silent);
  silent.write(LOG_PROTOCOL_MAGIC);
  await new Promise((r) => silent.once('close', r));
  assert.match((await silentFrames)[0]?.body ?? '', /no HELLO within/);

  assert.equal(await s.metric('log_shipper_auth_failures_total', { kind: 'router', reason: 'bad_token' }), 1);
  assert.equal(await s.metric('log_shipper_auth_failures_total', { kind: 'router', reason: 'bad_hello' }), 1);
  assert.equal(await s.metric('log_shipper_auth_failures_total', { kind: 'router', reason: 'hello_timeout' }), 1);
  assert.deepEqual(await readdir(s.dir), []);
  // Any of the listed tokens is accepted (rotation).
  const s2 = await startTestShipper({ LOG_SHIPPER_TOKEN: 'old-token-1234567890,new-token-1234567890' });
  t.after(() => s2.close());
  for (const token of ['old-token-1234567890', 'new-token-1234567890']) await (await LogSender.connect({ port: s2.port, token })).close();
});

function collectFrames(socket: net.Socket): Promise<Array<{ type: number; body: string }>> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  return new Promise((resolve) =>
    socket.once('close', () => {
      const all = Buffer.concat(chunks);
      const frames: Array<{ type: number; body: string }> = [];
      for (let at = 0; at + 5 <= all.length; ) {
        const len = all.readUInt32BE(at);
        frames.push({ type: all[at + 4]!, body: all.toString('utf8', at + 5, at + 4 + len) });
        at += 4 + len;
      }
      resolve(frames);
    }),
  );
}

test('a resent seq is acked OK without writing twice, on the same connection or a new one of the same router', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const first = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN, router: 'r1' });
  assert.equal((await first.send(1, [{ app: 'shop', data: lines('shop', 0, 2) }])).status, AckStatus.OK);
  assert.equal((await first.send(2, [{ app: 'shop', data: lines('shop', 2, 2) }])).status, AckStatus.OK);
  const again = await first.send(2, [{ app: 'shop', data: lines('shop', 2, 2) }]);
  assert.deepEqual([again.status, again.accepted], [AckStatus.OK, 2]);
  await first.close();
  // The router reconnects after a lost ack and resends everything it holds.
  const second = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN, router: 'r1' });
  assert.equal((await second.send(1, [{ app: 'shop', data: lines('shop', 0, 2) }])).status, AckStatus.OK);
  assert.equal((await second.send(2, [{ app: 'shop', data: lines('shop', 2, 2) }])).status, AckStatus.OK);
  assert.equal((await second.send(3, [{ app: 'shop', data: lines('shop', 4, 2) }])).status, AckStatus.OK);
  // Another router's seq 1 is its own.
  const other = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN, router: 'r2' });
  assert.equal((await other.send(1, [{ app: 'shop', data: lines('shop', 6, 1) }])).status, AckStatus.OK);
  assert.deepEqual(numbers(await s.read('shop'), 'shop'), [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(await s.metric('log_shipper_duplicates_suppressed_total'), 3);
  await Promise.all([second.close(), other.close()]);
});

test('a failing backend: UNAVAILABLE, the process carries on, and a resend is written once the fault is gone — even below a later OK', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  // A file where the app's directory should be: open() fails.
  await writeFile(join(s.dir, 'blocked'), 'not a directory');
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN, router: 'r-fail' });
  const failed = await sender.send(5, [{ app: 'blocked', data: lines('blocked', 0, 3) }]);
  assert.equal(failed.status, AckStatus.UNAVAILABLE);
  assert.match(failed.message, /^file: /);
  // Pipelining: batch 6 succeeds while 5 still has to be resent.
  assert.equal((await sender.send(6, [{ app: 'fine', data: lines('fine', 0, 1) }])).status, AckStatus.OK);
  assert.equal((await sender.send(5, [{ app: 'blocked', data: lines('blocked', 0, 3) }])).status, AckStatus.UNAVAILABLE);
  await rm(join(s.dir, 'blocked'));
  const resent = await sender.send(5, [{ app: 'blocked', data: lines('blocked', 0, 3) }]);
  assert.deepEqual([resent.status, resent.accepted], [AckStatus.OK, 3]);
  assert.equal(await s.read('blocked'), lines('blocked', 0, 3));
  assert.equal(await s.metric('log_shipper_acks_total', { status: 'unavailable' }), 2);
  assert.equal(await s.metric('log_shipper_backend_failures_total', { backend: 'file' }), 2);
  assert.ok((await s.metric('log_shipper_file_write_errors_total', { operation: 'open' })) >= 2);
  assert.equal(await s.metric('log_shipper_duplicates_suppressed_total'), 0);
  await sender.close();
});

test('HTTP on the same port: /healthz, /readyz, /metrics with the counters; unknown paths 404', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  await sender.send(1, [{ app: 'shop', data: lines('shop', 0, 4) }]);
  await sender.send(1, [{ app: 'shop', data: lines('shop', 0, 4) }]);
  const health = await fetch(`${s.base}/healthz`);
  assert.deepEqual([health.status, await health.json()], [200, { status: 'ok' }]);
  const ready = await fetch(`${s.base}/readyz`);
  assert.deepEqual([ready.status, await ready.json()], [200, { status: 'ready', listening: true, backends: { file: true } }]);
  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  for (const expected of [
    'log_shipper_batches_received_total 2',
    'log_shipper_lines_received_total{result="accepted"} 4',
    'log_shipper_acks_total{status="ok"} 2',
    'log_shipper_duplicates_suppressed_total 1',
    'log_shipper_router_connections 1',
    'log_shipper_file_lines_written_total 4',
    'log_shipper_open_files 1',
    'log_shipper_backend_lines_total{backend="file"} 4',
    'process_cpu_seconds_total',
  ]) {
    assert.ok(metrics.includes(expected), expected);
  }
  assert.match(metrics, /log_shipper_bytes_received_total \d+/);
  assert.match(metrics, /log_shipper_file_write_seconds_count 1/);
  const missing = await fetch(`${s.base}/nope`);
  assert.deepEqual([missing.status, ((await missing.json()) as { code: string }).code], [404, 'NOT_FOUND']);
  const post = await fetch(`${s.base}/metrics`, { method: 'POST' });
  assert.deepEqual([post.status, ((await post.json()) as { code: string }).code], [405, 'METHOD_NOT_ALLOWED']);
  // A router connection and HTTP keep working side by side.
  assert.equal((await sender.send(2, [{ app: 'shop', data: lines('shop', 4, 1) }])).status, AckStatus.OK);
  await sender.close();
});

test('/readyz follows the backends: a backend that says it is not ready makes it 503', async (t) => {
  let up = false;
  const backend = {
    name: 'bullmq' as const,
    ready: () => up,
    write: async () => undefined,
    reopen: async () => undefined,
    close: async () => undefined,
  };
  const s = await startTestShipper({ LOG_BACKENDS: 'bullmq' }, { backends: [backend] });
  t.after(() => s.close());
  const down = await fetch(`${s.base}/readyz`);
  assert.deepEqual([down.status, await down.json()], [503, { status: 'not ready', listening: true, backends: { bullmq: false } }]);
  up = true;
  assert.equal((await fetch(`${s.base}/readyz`)).status, 200);
});

test('HTTP sniffing: a request sent byte by byte and an HTTP/1.1 keep-alive connection are served', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const socket = net.connect(s.port, '127.0.0.1');
  let answer = '';
  socket.on('data', (c: Buffer) => (answer += c.toString()));
  const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  for (const ch of request) {
    socket.write(ch);
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => socket.once('close', r));
  assert.equal(answer.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
  // Garbage that is neither protocol is answered 400 by the HTTP parser, not a crash.
  const junk = net.connect(s.port, '127.0.0.1');
  let junkAnswer = '';
  junk.on('data', (c: Buffer) => (junkAnswer += c.toString()));
  junk.write(Buffer.from([0x00, 0xff, 0x10, 0x0a, 0x0d, 0x0a]));
  await new Promise((r) => junk.once('close', r));
  assert.match(junkAnswer, /^HTTP\/1\.1 400/);
  // Half a magic that turns out not to be one goes to HTTP too.
  const half = net.connect(s.port, '127.0.0.1');
  let halfAnswer = '';
  half.on('data', (c: Buffer) => (halfAnswer += c.toString()));
  half.write('RLOG');
  await new Promise((r) => setTimeout(r, 20));
  half.write('X / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await new Promise((r) => half.once('close', r));
  assert.match(halfAnswer, /^HTTP\/1\.1 (400|404|405|501)/);
  assert.equal((await fetch(`${s.base}/healthz`)).status, 200);
});

test('a second HELLO or an unknown frame type is a protocol error: ERROR and close', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  sender.write(encodeHello({ token: SHIPPER_TOKEN, router: 'again' }));
  await sender.closed;
  assert.match(sender.error ?? '', /unexpected frame type 1/);
  assert.equal(await s.metric('log_shipper_protocol_errors_total'), 1);
  await eventually(async () => (await s.metric('log_shipper_router_connections')) === 0);
});

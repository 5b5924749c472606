import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { AckStatus, type Ack } from '../../proto/log-batch.js';
import type { AppLines, LogBackend } from '../src/backends/backend.js';
import { LogSender, lines } from '../../test-support/log-sender.js';
import { SHIPPER_TOKEN, startTestShipper, type TestShipper } from '../../test-support/log-shipper.js';
import { eventually } from '../../test-support/router.js';

const AUTH = { authorization: `Bearer ${SHIPPER_TOKEN}` };

interface Stream {
  status: number;
  headers: http.IncomingHttpHeaders;
  text(): string;
  ended: Promise<void>;
  close(): void;
}

/** A streaming GET: the body so far is always readable, the request can be cut. */
function open(s: TestShipper, path: string, headers: Record<string, string> = AUTH): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: s.port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      const ended = new Promise<void>((r) => {
        res.once('end', r);
        res.once('close', r);
      });
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text: () => body, ended, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

async function get(s: TestShipper, path: string, headers: Record<string, string> = AUTH): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const stream = await open(s, path, headers);
  await stream.ended;
  return { status: stream.status, body: stream.text(), headers: stream.headers };
}

test('tail: the last N lines from the file, then every new line as it is accepted (NDJSON)', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  // Enough lines that the history read spans several 64 KB chunks from the end.
  for (let b = 0; b < 10; b++) await sender.send(b + 1, [{ app: 'shop', data: lines('shop', b * 100, 100, 200) }, { app: 'blog', data: lines('blog', b, 1) }]);

  const plain = await get(s, '/v1/apps/shop/logs?lines=3');
  assert.equal(plain.status, 200);
  assert.match(String(plain.headers['content-type']), /application\/x-ndjson/);
  assert.equal(plain.body, lines('shop', 997, 3, 200));
  assert.equal((await get(s, '/v1/apps/shop/logs?lines=500')).body, lines('shop', 500, 500, 200));
  assert.equal((await get(s, '/v1/apps/shop/logs')).body, lines('shop', 900, 100, 200));
  assert.equal((await get(s, '/v1/apps/shop/logs?lines=0')).body, '');
  assert.equal((await get(s, '/v1/apps/nobody/logs')).body, '');

  const follow = await open(s, '/v1/apps/shop/logs?lines=2&follow=1');
  await eventually(async () => follow.text() === lines('shop', 998, 2, 200));
  await sender.send(11, [{ app: 'shop', data: lines('shop', 1000, 3, 200) }, { app: 'blog', data: lines('blog', 10, 1) }]);
  await sender.send(12, [{ app: 'blog', data: lines('blog', 11, 1) }]);
  await sender.send(13, [{ app: 'shop', data: lines('shop', 1003, 1, 200) }]);
  await eventually(async () => follow.text() === lines('shop', 998, 6, 200));
  // A duplicate batch is not shown again.
  await sender.send(13, [{ app: 'shop', data: lines('shop', 1003, 1, 200) }]);
  await sender.send(14, [{ app: 'shop', data: lines('shop', 1004, 1, 200) }]);
  await eventually(async () => follow.text() === lines('shop', 998, 7, 200));
  assert.equal(await s.metric('log_shipper_tail_subscribers'), 1);
  follow.close();
  await eventually(async () => (await s.metric('log_shipper_tail_subscribers')) === 0);
  await sender.close();
});

test('tail: right after a rotation the history goes on in router.log.1', async (t) => {
  // Rotation at 20 000 bytes, batches of 50 lines of ~230 bytes: each batch after the first
  // rotates, so router.log holds lines 100-149, .1 50-99, .2 0-49.
  const s = await startTestShipper({ LOG_ROTATE_BYTES: '20000', LOG_ROTATE_KEEP: '2' });
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  t.after(() => sender.close());
  for (let b = 0; b < 3; b++) assert.equal((await sender.send(b + 1, [{ app: 'shop', data: lines('shop', b * 50, 50, 200) }])).status, AckStatus.OK);
  assert.ok((await s.metric('log_shipper_file_rotations_total')) >= 1, 'the third batch rotated the file');
  assert.equal(await s.read('shop'), lines('shop', 100, 50, 200), 'the current file holds the last batch only');
  assert.equal((await get(s, '/v1/apps/shop/logs?lines=80')).body, lines('shop', 70, 80, 200), '30 lines from router.log.1, then the current file');
  assert.equal((await get(s, '/v1/apps/shop/logs?lines=20')).body, lines('shop', 130, 20, 200));
  assert.equal((await get(s, '/v1/apps/shop/logs?lines=1000')).body, lines('shop', 50, 100, 200), 'router.log.2 is not read: .1 and the current file');
});

test('tail: SSE with Accept: text/event-stream', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  await sender.send(1, [{ app: 'shop', data: lines('shop', 0, 2) }]);
  const sse = await open(s, '/v1/apps/shop/logs?lines=1&follow=true', { ...AUTH, accept: 'text/event-stream' });
  assert.match(String(sse.headers['content-type']), /text\/event-stream/);
  await sender.send(2, [{ app: 'shop', data: lines('shop', 2, 2) }]);
  const expected = [1, 2, 3].map((n) => `data: {"app":"shop","n":${n}}\n\n`).join('');
  await eventually(async () => sse.text() === expected);
  sse.close();
  await sender.close();
});

test('tail: 401 without or with a wrong token, 400 for bad app names and parameters, 405 for other methods', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['/v1/apps/shop/logs', {}, 401, 'UNAUTHENTICATED'],
    ['/v1/apps/shop/logs', { authorization: 'Bearer wrong-token' }, 401, 'UNAUTHENTICATED'],
    ['/v1/apps/shop/logs', { authorization: `Basic ${SHIPPER_TOKEN}` }, 401, 'UNAUTHENTICATED'],
    // Unauthenticated callers learn nothing about the rest of the request.
    ['/v1/apps/BAD/logs?lines=x', {}, 401, 'UNAUTHENTICATED'],
    ['/v1/apps/BAD/logs', AUTH, 400, 'INVALID_APP'],
    ['/v1/apps/_unrouted/logs', AUTH, 400, 'INVALID_APP'],
    ['/v1/apps/-/logs', AUTH, 400, 'INVALID_APP'],
    ['/v1/apps/..%2f..%2fetc/logs', AUTH, 400, 'INVALID_APP'],
    ['/v1/apps//logs', AUTH, 400, 'INVALID_APP'],
    ['/v1/apps/shop/logs?lines=-1', AUTH, 400, 'INVALID_PARAMETER'],
    ['/v1/apps/shop/logs?lines=10001', AUTH, 400, 'INVALID_PARAMETER'],
    ['/v1/apps/shop/logs?lines=1&lines=2', AUTH, 400, 'INVALID_PARAMETER'],
    ['/v1/apps/shop/logs?follow=yes', AUTH, 400, 'INVALID_PARAMETER'],
    ['/v1/apps/shop/logs?grep=x', AUTH, 400, 'UNKNOWN_PARAMETER'],
    ['/v1/apps/shop/../../x', AUTH, 404, 'NOT_FOUND'],
  ];
  for (const [path, headers, status, code] of cases) {
    const res = await get(s, path, headers);
    assert.equal(res.status, status, path);
    assert.equal((JSON.parse(res.body) as { code: string }).code, code, path);
    assert.ok((JSON.parse(res.body) as { message: string }).message.length > 0);
  }
  const post = await fetch(`${s.base}/v1/apps/shop/logs`, { method: 'POST', headers: AUTH });
  assert.equal(post.status, 405);
  assert.equal(await s.metric('log_shipper_auth_failures_total', { kind: 'http' }), 4);
});

test('tail: a subscriber that does not read never slows ingestion; it is told how many lines it missed', async (t) => {
  const s = await startTestShipper({ LOG_FSYNC: 'never' }, { tailMaxBuffered: 16 * 1024 });
  t.after(() => s.close());
  // A client that asks to follow and then stops reading: its socket buffers fill up.
  const slow = net.connect({ port: s.port, host: '127.0.0.1' });
  slow.setNoDelay(true);
  let received = '';
  slow.on('data', (c: Buffer) => (received += c.toString('latin1')));
  slow.write(`GET /v1/apps/shop/logs?lines=0&follow=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SHIPPER_TOKEN}\r\n\r\n`);
  await eventually(async () => received.includes('200 OK'));
  await eventually(async () => (await s.metric('log_shipper_tail_subscribers')) === 1);
  slow.pause();

  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const K = 200;
  const BATCHES = 150; // ~9 MB of lines to a client that reads none of it
  const acks: Array<Promise<Ack>> = [];
  for (let b = 0; b < BATCHES; b++) {
    acks.push(sender.send(b + 1, [{ app: 'shop', data: lines('shop', b * K, K, 250) }]));
    if (acks.length >= 8) await acks[acks.length - 8];
  }
  assert.ok((await Promise.all(acks)).every((a) => a.status === AckStatus.OK));
  // Every line is on disk, whatever the tail client does.
  assert.equal((await s.read('shop')).split('\n').length - 1, BATCHES * K);
  const dropped = await s.metric('log_shipper_tail_lines_dropped_total');
  assert.ok(dropped > 0, 'lines were dropped for the slow client');

  slow.resume();
  // The kernel's socket buffers let some bytes through even to a paused reader, so there may
  // be several episodes of drops, each with its own notice: in the end, every dropped line is told.
  const told = (): number => [...received.matchAll(/\{"dropped":(\d+)\}/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  await eventually(async () => told() === dropped, 10_000, 10);
  // After the notice, lines flow again.
  await sender.send(BATCHES + 1, [{ app: 'shop', data: '{"app":"shop","n":"after"}\n' }]);
  await eventually(async () => received.includes('{"app":"shop","n":"after"}'), 10_000, 10);
  slow.destroy();
  await sender.close();
});

/** A backend that keeps nothing but a count: the tail history must then come from memory. */
function countingBackend(): LogBackend & { batches: AppLines[][] } {
  const batches: AppLines[][] = [];
  return {
    name: 'bullmq',
    batches,
    async write(batch) {
      batches.push(batch.map((a) => ({ ...a, data: Buffer.from(a.data) })));
    },
    reopen: async () => undefined,
    close: async () => undefined,
  };
}

test('tail without the file backend: the history comes from an in-memory ring of LOG_TAIL_BUFFER_LINES per app', async (t) => {
  const backend = countingBackend();
  const s = await startTestShipper({ LOG_BACKENDS: 'bullmq', LOG_TAIL_BUFFER_LINES: '50' }, { backends: [backend] });
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  for (let b = 0; b < 7; b++) await sender.send(b + 1, [{ app: 'shop', data: lines('shop', b * 20, 20) }, { app: '-', data: '{"app":"-"}\n' }]);
  // One batch larger than the ring alone.
  await sender.send(8, [{ app: 'shop', data: lines('shop', 140, 120) }]);
  assert.equal((await get(s, '/v1/apps/shop/logs?lines=5')).body, lines('shop', 255, 5));
  assert.equal((await get(s, '/v1/apps/shop/logs?lines=1000')).body, lines('shop', 210, 50));
  const follow = await open(s, '/v1/apps/shop/logs?lines=2&follow=1');
  await sender.send(9, [{ app: 'shop', data: lines('shop', 260, 1) }]);
  await eventually(async () => follow.text() === lines('shop', 258, 3));
  follow.close();
  assert.equal(backend.batches.length, 9);
  assert.deepEqual(await (await import('node:fs/promises')).readdir(s.dir).catch(() => []), []);
  await sender.close();
});

/**
 * Bodies are streamed, never buffered whole: 200 MB each way through the router (client,
 * router and container all in this process) must not grow the RSS by anywhere near that.
 * The data is generated on the fly and never held in memory.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hostRecord, startRouter, startUpstream, type Harness, type Upstream } from './proxy-harness.test.js';

const TOTAL = 200 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');
const MAX_GROWTH = 100 * 1024 * 1024;
/** A first smaller transfer lets the allocator reach its steady state (Node to Node alone grows the RSS by ~40 MB). */
const WARM_UP = 32 * 1024 * 1024;

let h: Harness;
let up: Upstream;

/** `total` bytes, one shared 64 KiB buffer at a time, at the pace the consumer reads. */
function generated(total = TOTAL): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(CHUNK.length, total - sent);
      sent += n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

before(async () => {
  up = await startUpstream('big', (req, res) => {
    if (req.method === 'POST') {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => res.end(String(bytes)));
      return;
    }
    const total = req.url === '/warm-up' ? WARM_UP : TOTAL;
    res.writeHead(200, { 'content-length': String(total), 'content-type': 'application/octet-stream' });
    void pipeline(generated(total), res).catch(() => undefined);
  });
  h = await startRouter();
  h.routes.set('big.localhost', hostRecord('big', [up.container]));
});
after(async () => {
  await h.close();
  await up.close();
});

/** Runs `work` while sampling the RSS; returns its result and the peak growth. */
async function measured<T>(work: () => Promise<T>): Promise<{ result: T; growth: number }> {
  global.gc?.();
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  try {
    const result = await work();
    return { result, growth: Math.max(peak, process.memoryUsage.rss()) - base };
  } finally {
    clearInterval(timer);
  }
}

function download(path: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: h.port, path, headers: { host: 'big.localhost' }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve(bytes));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

test('a 200 MB download streams through with flat memory', { timeout: 60_000 }, async () => {
  assert.equal(await download('/warm-up'), WARM_UP);
  const { result, growth } = await measured(() => download('/download'));
  assert.equal(result, TOTAL);
  assert.ok(growth < MAX_GROWTH, `RSS grew by ${(growth / 1048576).toFixed(1)} MB`);
  assert.equal(h.lines.at(-1)?.bytes_out, TOTAL);
});

test('a 200 MB upload streams through with flat memory', { timeout: 60_000 }, async () => {
  const { result, growth } = await measured(async () => {
    let answer = '';
    const req = http.request({ host: '127.0.0.1', port: h.port, path: '/upload', method: 'POST', headers: { host: 'big.localhost', 'content-length': String(TOTAL) }, agent: false });
    const response = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        res.on('data', (c: Buffer) => (answer += c.toString()));
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    await pipeline(generated(), req);
    await response;
    return Number(answer);
  });
  assert.equal(result, TOTAL);
  assert.ok(growth < MAX_GROWTH, `RSS grew by ${(growth / 1048576).toFixed(1)} MB`);
  assert.equal(h.lines.at(-1)?.bytes_in, TOTAL);
});

import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { UNROUTED_SECTION } from '../../proto/log-batch.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../scripts/embedded-redis.js';
import { deleteByPrefix, redisUrl, uniquePrefix } from '../../test-support/redis.js';
import { eventually } from '../../test-support/router.js';
import type { AppLines } from '../src/backends/backend.js';
import { BullmqBackendError, bullmqPrefix, createBullmqBackend, LOG_JOB_NAME, type BullmqBackend, type BullmqBackendConfig, type LogJobData } from '../src/backends/bullmq-backend.js';
import { registerBullmqMetrics } from '../src/backends/bullmq-metrics.js';

const QUEUE = 'router-logs';

/** Everything a test opened, closed after it whatever happened. */
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

function configFor(url: string, redisPrefix: string, queueName = QUEUE): BullmqBackendConfig {
  return { redisUrl: new URL(url), redisSentinels: undefined, redisSentinelName: 'mymaster', redisPrefix, queueName };
}

interface LogRecord {
  level: number;
  msg: string;
  code?: string;
}

function capturingLogger(): { log: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) });
  return { log, records };
}

/** A backend on the shared test Redis under a fresh prefix; its keys are deleted after the test. */
async function sharedBackend(label: string, registry?: Registry): Promise<{ backend: BullmqBackend; prefix: string; reader: Queue<LogJobData> }> {
  const prefix = uniquePrefix(label);
  const admin = new Redis(redisUrl());
  cleanups.push(async () => {
    await deleteByPrefix(admin, prefix);
    admin.disconnect();
  });
  const backend = await createBullmqBackend(configFor(redisUrl(), prefix), pino({ level: 'silent' }), registry === undefined ? undefined : registerBullmqMetrics(registry));
  cleanups.push(() => backend.close());
  const reader = new Queue<LogJobData>(QUEUE, { connection: { url: redisUrl() }, prefix: bullmqPrefix(prefix) });
  cleanups.push(() => reader.close());
  return { backend, prefix, reader };
}

function lines(app: string, from: number, n: number): AppLines {
  let data = '';
  for (let i = from; i < from + n; i++) data += `${JSON.stringify({ at: i, app, path: `/p/${i}`, note: 'quote " and \\ and é' })}\n`;
  return { app, data: Buffer.from(data, 'utf8'), lines: n };
}

/** The NDJSON each app should have received, in write order. */
function expectedByApp(batches: AppLines[][]): Map<string, { text: string; count: number }> {
  const out = new Map<string, { text: string; count: number }>();
  for (const batch of batches) {
    for (const s of batch) {
      const prev = out.get(s.app) ?? { text: '', count: 0 };
      out.set(s.app, { text: prev.text + s.data.toString('utf8'), count: prev.count + s.lines });
    }
  }
  return out;
}

function byApp(jobs: ReadonlyArray<{ data: LogJobData }>): Map<string, { text: string; count: number }> {
  const out = new Map<string, { text: string; count: number }>();
  for (const job of jobs) {
    const prev = out.get(job.data.app) ?? { text: '', count: 0 };
    out.set(job.data.app, { text: prev.text + job.data.lines, count: prev.count + job.data.count });
  }
  return out;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

test('batches of several apps become one job per app per batch, every line exactly, in order per app', async () => {
  const registry = new Registry();
  const { backend, reader } = await sharedBackend('bullmq-jobs', registry);
  assert.equal(backend.ready(), true);
  const batches: AppLines[][] = [];
  for (let b = 0; b < 6; b++) {
    batches.push([lines('shop', b * 10, 10), lines('blog', b * 3, 3), lines(UNROUTED_SECTION, b, 1 + (b % 2))]);
  }
  for (const batch of batches) await backend.write(batch);

  const jobs = (await reader.getJobs(['wait'], 0, -1, true)).sort((a, b) => Number(a.id) - Number(b.id));
  assert.equal(jobs.length, 18, 'one job per app per batch');
  for (const job of jobs) {
    assert.equal(job.name, LOG_JOB_NAME);
    assert.deepEqual(Object.keys(job.data).sort(), ['app', 'count', 'lines']);
    assert.equal(job.data.lines.split('\n').length - 1, job.data.count, 'count is the number of lines');
  }
  assert.deepEqual(byApp(jobs), expectedByApp(batches));
  assert.ok(jobs.some((j) => j.data.app === '-'), 'unrouted lines keep the app "-"');

  const text = await registry.metrics();
  assert.match(text, /^log_shipper_bullmq_jobs_added_total 18$/m);
  assert.match(text, /^log_shipper_bullmq_lines_added_total 87$/m);
  assert.match(text, /^log_shipper_bullmq_add_seconds_count 6$/m);
});

test('an empty batch or empty section adds no job', async () => {
  const { backend, reader } = await sharedBackend('bullmq-empty');
  await backend.write([]);
  await backend.write([{ app: 'shop', data: Buffer.alloc(0), lines: 0 }, lines('blog', 0, 2)]);
  const jobs = await reader.getJobs(['wait']);
  assert.deepEqual(jobs.map((j) => j.data.app), ['blog']);
});

test('a real Worker receives every line, in order per app; completed jobs are trimmed', async () => {
  const { backend, prefix, reader } = await sharedBackend('bullmq-worker');
  const batches: AppLines[][] = [];
  for (let b = 0; b < 70; b++) batches.push([lines('shop', b * 4, 4), lines('api', b, 1)]);
  for (const batch of batches) await backend.write(batch);

  const received: Array<{ data: LogJobData }> = [];
  const worker = new Worker<LogJobData>(
    QUEUE,
    async (job: Job<LogJobData>) => {
      received.push({ data: job.data });
    },
    { connection: { url: redisUrl(), maxRetriesPerRequest: null }, prefix: bullmqPrefix(prefix), concurrency: 1 },
  );
  cleanups.push(() => worker.close());
  await eventually(async () => received.length === 140, 20_000, 20);
  await eventually(async () => (await reader.getJobCounts('completed')).completed === 100, 5000, 20);

  assert.deepEqual(byApp(received), expectedByApp(batches));
  const counts = await reader.getJobCounts('wait', 'active', 'completed', 'failed');
  assert.deepEqual(counts, { wait: 0, active: 0, completed: 100, failed: 0 }, 'only the last 100 completed jobs stay in Redis');
});

test('the prefix keeps two platforms on one Redis apart', async () => {
  const a = await sharedBackend('bullmq-pa');
  const b = await sharedBackend('bullmq-pb');
  await a.backend.write([lines('shop', 0, 2)]);
  await b.backend.write([lines('shop', 100, 3), lines('blog', 0, 1)]);

  const jobsA = await a.reader.getJobs(['wait']);
  const jobsB = await b.reader.getJobs(['wait']);
  assert.deepEqual(byApp(jobsA), expectedByApp([[lines('shop', 0, 2)]]));
  assert.deepEqual(byApp(jobsB), expectedByApp([[lines('shop', 100, 3), lines('blog', 0, 1)]]));

  // Every key the backend wrote sits under its platform's prefix.
  const admin = new Redis(redisUrl());
  cleanups.push(async () => admin.disconnect());
  const [, keysA] = await admin.scan('0', 'MATCH', `${a.prefix}*`, 'COUNT', 1000);
  assert.ok(keysA.length > 0 && keysA.every((k) => k.startsWith(`${a.prefix}bull:${QUEUE}:`)), keysA.join(' '));
});

test('an invalid queue name is refused at creation with a stable code', async () => {
  await assert.rejects(
    createBullmqBackend(configFor(redisUrl(), uniquePrefix('bullmq-name'), 'a:b'), pino({ level: 'silent' })),
    (err: unknown) => err instanceof BullmqBackendError && err.code === 'BULLMQ_BAD_QUEUE_NAME',
  );
});

test('Redis down: writes reject fast and are counted and logged; Redis back: writes succeed again', { timeout: 60_000 }, async () => {
  let redis: EmbeddedRedis = await startEmbeddedRedis();
  cleanups.push(() => redis.stop());
  const registry = new Registry();
  const { log, records } = capturingLogger();
  const prefix = uniquePrefix('bullmq-outage');
  const backend = await createBullmqBackend(configFor(redis.url, prefix), log, registerBullmqMetrics(registry));
  cleanups.push(() => backend.close());
  await backend.write([lines('shop', 0, 1)]);

  const port = redis.port;
  await redis.stop();
  await assert.rejects(backend.write([lines('shop', 1, 1)]), (err: unknown) => err instanceof BullmqBackendError);
  await eventually(async () => !backend.ready(), 5000, 20);
  await assert.rejects(backend.write([lines('shop', 2, 1)]), (err: unknown) => err instanceof BullmqBackendError && err.code === 'BULLMQ_UNAVAILABLE');
  assert.match(await registry.metrics(), /^log_shipper_bullmq_add_failures_total\{reason="unavailable"\} [1-9]/m);
  assert.ok(records.some((r) => r.msg.includes('connection lost')), 'the outage is logged');
  assert.ok(records.some((r) => r.code === 'BULLMQ_UNAVAILABLE'), 'refused batches are logged with their code');

  redis = await startEmbeddedRedis({ port });
  await eventually(async () => backend.ready(), 15_000, 20);
  await backend.write([lines('shop', 3, 1)]);
  const reader = new Queue<LogJobData>(QUEUE, { connection: { url: redis.url }, prefix: bullmqPrefix(prefix) });
  cleanups.push(() => reader.close());
  assert.deepEqual(byApp(await reader.getJobs(['wait'])), expectedByApp([[lines('shop', 3, 1)]]), 'the restarted (empty) Redis holds the new batch');
});

test('Redis hung (process stopped): a write rejects within the command timeout, then works once it resumes', { timeout: 60_000 }, async () => {
  const redis = await startEmbeddedRedis();
  cleanups.push(() => redis.stop());
  cleanups.push(async () => process.kill(redis.pid, 'SIGCONT'));
  const prefix = uniquePrefix('bullmq-hung');
  const backend = await createBullmqBackend(configFor(redis.url, prefix), pino({ level: 'silent' }));
  cleanups.push(() => backend.close());

  process.kill(redis.pid, 'SIGSTOP');
  await assert.rejects(backend.write([lines('shop', 0, 1)]), (err: unknown) => err instanceof BullmqBackendError && err.code === 'BULLMQ_ADD_FAILED');
  process.kill(redis.pid, 'SIGCONT');
  await eventually(async () => backend.ready(), 10_000, 20);
  await backend.write([lines('shop', 1, 1)]);
});

test('Redis unreachable at start: the backend starts not ready, refuses writes, and opens when Redis comes', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const prefix = uniquePrefix('bullmq-late');
  const backend = await createBullmqBackend(configFor(`redis://127.0.0.1:${port}`, prefix), pino({ level: 'silent' }));
  cleanups.push(() => backend.close());
  assert.equal(backend.ready(), false);
  await assert.rejects(backend.write([lines('shop', 0, 1)]), (err: unknown) => err instanceof BullmqBackendError && err.code === 'BULLMQ_UNAVAILABLE');

  const redis = await startEmbeddedRedis({ port });
  cleanups.push(() => redis.stop());
  await eventually(async () => backend.ready(), 15_000, 20);
  await backend.write([lines('shop', 1, 2)]);
  const reader = new Queue<LogJobData>(QUEUE, { connection: { url: redis.url }, prefix: bullmqPrefix(prefix) });
  cleanups.push(() => reader.close());
  assert.deepEqual(byApp(await reader.getJobs(['wait'])), expectedByApp([[lines('shop', 1, 2)]]));
});

test('close: the backend is no longer ready and refuses writes', async () => {
  const { backend } = await sharedBackend('bullmq-close');
  await backend.reopen();
  await backend.close();
  assert.equal(backend.ready(), false);
  await assert.rejects(backend.write([lines('shop', 0, 1)]), (err: unknown) => err instanceof BullmqBackendError && err.code === 'BULLMQ_UNAVAILABLE');
  await backend.close();
});

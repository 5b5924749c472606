import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { startEmbeddedRedis, type EmbeddedRedis } from '../embedded-redis.js';

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function withClient<T>(url: string, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect();
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

test('a non-persistent instance answers on loopback and is gone after stop', async (t) => {
  const server = await startEmbeddedRedis();
  t.after(() => server.stop());

  assert.equal(server.url, `redis://127.0.0.1:${server.port}`);
  assert.ok(server.pid > 0);
  await withClient(server.url, async (redis) => {
    assert.equal(await redis.ping(), 'PONG');
    const bind = (await redis.config('GET', 'bind')) as string[];
    assert.match(bind[1] ?? '', /^127\.0\.0\.1\b/);
    const appendonly = (await redis.config('GET', 'appendonly')) as string[];
    assert.equal(appendonly[1], 'no');
    const save = (await redis.config('GET', 'save')) as string[];
    assert.equal(save[1], '');
  });

  await server.stop();
  assert.equal(await connects(server.port), false);
  await server.stop();
});

test('a persistent instance keeps its keys across a restart on the same directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'embedded-redis-'));
  const persistDir = join(dir, 'nested', 'redis');
  let current: EmbeddedRedis | undefined;
  // One hook, in order: redis must be gone before its directory is.
  t.after(async () => {
    await current?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  current = await startEmbeddedRedis({ persistDir });
  await withClient(current.url, async (redis) => {
    assert.equal(await redis.set('greeting', 'hello'), 'OK');
  });
  await current.stop();

  current = await startEmbeddedRedis({ persistDir });
  await withClient(current.url, async (redis) => {
    assert.equal(await redis.get('greeting'), 'hello');
    const appendonly = (await redis.config('GET', 'appendonly')) as string[];
    assert.equal(appendonly[1], 'yes');
  });
});

test('an explicit port is used as given', async (t) => {
  const probe = await startEmbeddedRedis();
  const port = probe.port;
  await probe.stop();

  const server = await startEmbeddedRedis({ port });
  t.after(() => server.stop());
  assert.equal(server.port, port);
  assert.equal(await connects(port), true);
});

test('a port already in use is reported with redis-server output', async (t) => {
  const holder = await startEmbeddedRedis();
  t.after(() => holder.stop());
  await assert.rejects(startEmbeddedRedis({ port: holder.port }), /already in use/i);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { codeVersion } from '../../proto/build-info.js';
import { startRouter } from '../src/router.js';
import { spawnRouter } from '../../test-support/router-process.js';
import { eventually, startStack, startUpstream } from '../../test-support/router.js';
import { Redis } from 'ioredis';
import { redisUrl } from '../../test-support/redis.js';

interface Listed {
  version: number;
  routers: Array<{ id: string; pid: number; worker: number; code_version: string; config_version: number; lag: number; subscribed: boolean; inflight: number; websockets: number; last_seen_ms_ago: number }>;
}

test('every router is listed with its code and config version; lag shows writes it has not applied; a closed router leaves', async () => {
  const stack = await startStack('fleet', { ROUTER_HEARTBEAT_INTERVAL: '100' });
  const second = await startRouter(stack.config, pino({ level: 'silent' }), { port: 0, httpsPort: 0, accessLog: () => undefined });
  const up = await startUpstream('f1');
  try {
    await stack.h.deploy('fleet-app', [up.container]);
    const current = async (): Promise<Listed> => (await stack.h.request('GET', '/v1/routers')).body as Listed;
    await eventually(async () => {
      const view = await current();
      return view.routers.length === 2 && view.routers.every((r) => r.config_version === view.version && r.lag === 0);
    }, 5_000, 50);
    const view = await current();
    assert.ok(view.version >= 1);
    assert.equal(new Set(view.routers.map((r) => r.id)).size, 2);
    for (const r of view.routers) {
      assert.equal(r.code_version, codeVersion());
      assert.equal(r.pid, process.pid);
      assert.equal(r.subscribed, true);
      assert.ok(r.last_seen_ms_ago < 5_000);
    }

    // Writes the routers never heard of (no message published): both fall behind by 5.
    const redis = new Redis(redisUrl());
    await redis.incrby(`${stack.h.prefix}version`, 5);
    redis.disconnect();
    await eventually(async () => (await current()).routers.every((r) => r.lag === 5), 5_000, 50);
    await eventually(async () => /router_config_version_lag 5\b/.test(await stack.router.metrics.registry.metrics()), 5_000, 50);

    await second.close();
    const after = await current();
    assert.equal(after.routers.length, 1, 'a router that stopped cleanly is gone at once');

    const anonymous = await stack.h.request('GET', '/v1/routers', undefined, { auth: 'none' });
    assert.equal(anonymous.status, 401);
  } finally {
    await second.close();
    await up.close();
    await stack.close();
  }
});

test('a worker that dies without a word disappears after its record expires; its replacement appears', async () => {
  const stack = await startStack('fleet-kill');
  const router = await spawnRouter(stack.h.prefix, { ROUTER_HEARTBEAT_INTERVAL: '200' });
  try {
    const listed = async (): Promise<Listed['routers']> => ((await stack.h.request('GET', '/v1/routers')).body as Listed).routers.filter((r) => r.worker > 0);
    await eventually(async () => (await listed()).length === 2, 10_000, 50);
    const victim = (await listed())[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await eventually(async () => {
      const now = await listed();
      return now.length === 2 && !now.some((r) => r.pid === victim.pid);
    }, 15_000, 50);
  } finally {
    router.kill();
    await stack.close();
  }
});

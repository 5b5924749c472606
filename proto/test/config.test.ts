import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../config/env.js';
import { loadControlPlaneConfig } from '../../control-plane/src/config.js';

test('defaults apply and a malformed variable is named', () => {
  const ok = loadControlPlaneConfig({ CONTROL_PLANE_TOKENS: 'a,b', REDIS_URL: 'redis://127.0.0.1:6379' });
  assert.equal(ok.port, 4000);
  assert.equal(ok.grpcPort, 4001);
  assert.equal(ok.host, '127.0.0.1');
  assert.equal(ok.redisPrefix, 'rt:');
  assert.equal(ok.platformDomain, 'localhost');
  assert.deepEqual(ok.tokens, ['a', 'b']);

  const bad = (env: Record<string, string>, name: string) => {
    assert.throws(
      () => loadControlPlaneConfig({ CONTROL_PLANE_TOKENS: 'a', ...env }),
      (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith(`${name}:`)),
      name,
    );
  };
  bad({ CONTROL_PLANE_PORT: 'eighty' }, 'CONTROL_PLANE_PORT');
  bad({ CONTROL_PLANE_PORT: '70000' }, 'CONTROL_PLANE_PORT');
  bad({ REDIS_URL: 'http://x' }, 'REDIS_URL');
  bad({ REDIS_SENTINELS: 'host-without-port' }, 'REDIS_SENTINELS');
  bad({ REDIS_PREFIX: 'bad prefix' }, 'REDIS_PREFIX');
  bad({ PLATFORM_DOMAIN: 'not a domain' }, 'PLATFORM_DOMAIN');
  bad({ HOOK_SECRET: 'short' }, 'HOOK_SECRET');
  bad({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL');
});

test('refuses to run open and never prints secrets', () => {
  assert.throws(() => loadControlPlaneConfig({}), /CONTROL_PLANE_TOKENS or HOOK_SECRET/);
  assert.throws(
    () => loadControlPlaneConfig({ CONTROL_PLANE_TOKENS: 'a', HOOK_SECRET: 'tiny-secret' }),
    (err: unknown) => err instanceof ConfigError && !err.message.includes('tiny-secret'),
  );
  const sentinels = loadControlPlaneConfig({ CONTROL_PLANE_TOKENS: 'a', REDIS_SENTINELS: '10.0.0.1:26379,[::1]:26380' });
  assert.deepEqual(sentinels.redisSentinels, [{ host: '10.0.0.1', port: 26379 }, { host: '::1', port: 26380 }]);
});

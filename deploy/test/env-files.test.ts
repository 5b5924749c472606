import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connectRedis } from '../../proto/redis-connection.js';
import { parse } from '../../proto/config/env.js';
import { redisUrl } from '../../test-support/redis.js';
import { freePort } from '../../test-support/router-process.js';
import { eventually } from '../../test-support/router.js';
import { parseEnvFile, renderEnvFile } from '../env-file.js';
import { EXAMPLES, SERVICES } from '../services.js';
import { loadService, readRepoFile, refusal, sampleFor } from './deploy-files.js';

const envFile = (name: string) => parseEnvFile(readRepoFile('deploy', 'systemd', 'env', `${name}.env`), `${name}.env`);

test('the committed env files are what npm run gen:deploy-env writes from the declarations', () => {
  for (const s of SERVICES) {
    assert.equal(readRepoFile('deploy', 'systemd', 'env', `${s.name}.env`), renderEnvFile(s), `deploy/systemd/env/${s.name}.env is out of date: run npm run gen:deploy-env`);
  }
});

test('each env file names every variable of its service, and only those; secrets are marked', () => {
  for (const s of SERVICES) {
    const file = envFile(s.name);
    const text = readRepoFile('deploy', 'systemd', 'env', `${s.name}.env`);
    const named = [...file.set.keys(), ...file.commented.keys()];
    const declared = s.variables.map((v) => v.name);
    assert.deepEqual(named.filter((n) => !declared.includes(n)), [], `${s.name}.env: unknown variables`);
    assert.deepEqual(declared.filter((n) => !named.includes(n)), [], `${s.name}.env: variables missing`);
    for (const v of s.variables) {
      assert.equal(text.includes(`# ${v.name} (secret`), v.secret, `${s.name}.env: ${v.name} is ${v.secret ? '' : 'not '}marked secret`);
      // A commented line shows the default, so uncommenting it as is changes nothing.
      const shown = file.commented.get(v.name);
      if (shown !== undefined && EXAMPLES[v.name] === undefined) assert.equal(shown, v.defaultText ?? '', `${s.name}.env: #${v.name}= shows the default`);
    }
  }
});

test('as generated, each service refuses to start until its placeholders are filled; filled, it starts', () => {
  for (const s of SERVICES) {
    const file = envFile(s.name);
    const env = Object.fromEntries(file.set);
    assert.ok(refusal(s.name, env) !== null, `${s.name}.env with its placeholders empty must not start`);
    for (const [name, value] of file.set) {
      if (value === '') env[name] = sampleFor(s, name);
    }
    assert.equal(refusal(s.name, env), null, `${s.name}.env filled in`);
  }
  // Which ones are required is the loaders' business; these are the ones that stop a service today.
  const required = (name: 'control-plane' | 'router' | 'log-shipper', variable: string): void => {
    const s = SERVICES.find((x) => x.name === name)!;
    const env = Object.fromEntries([...envFile(name).set].map(([k, v]) => [k, v === '' ? sampleFor(s, k) : v]));
    delete env[variable];
    assert.match(refusal(name, env) ?? 'started', new RegExp(variable), `${name} without ${variable}`);
  };
  required('control-plane', 'CONTROL_PLANE_TOKENS');
  required('control-plane', 'REDIS_URL');
  required('router', 'REDIS_URL');
  required('log-shipper', 'LOG_SHIPPER_TOKEN');
});

test('the router env file\'s LOG_SHIPPER_URL example uses the log-shipper\'s port', () => {
  const router = envFile('router');
  const shipperService = SERVICES.find((s) => s.name === 'log-shipper')!;
  const routerService = SERVICES.find((s) => s.name === 'router')!;
  const token = sampleFor(shipperService, 'LOG_SHIPPER_TOKEN');
  const shipper = loadService('log-shipper', { ...Object.fromEntries(envFile('log-shipper').set), LOG_SHIPPER_TOKEN: token });
  assert.equal(router.set.has('LOG_SHIPPER_URL'), true);
  const example = new URL(sampleFor(routerService, 'LOG_SHIPPER_URL'));
  assert.equal(Number(example.port), shipper.listeners['logs']!.port, 'the LOG_SHIPPER_URL example uses the shipper\'s port');
});

test('Sentinel: sentinel.conf monitors the master the env files name, and the services reach it through it', async (t) => {
  const conf = readRepoFile('deploy', 'redis', 'sentinel.conf');
  const monitor = /^sentinel monitor (\S+) (\S+) (\d+) (\d+)$/m.exec(conf);
  assert.ok(monitor, 'sentinel.conf has a `sentinel monitor` line');
  const name = EXAMPLES['REDIS_SENTINEL_NAME']!.value;
  assert.equal(monitor[1], name, 'REDIS_SENTINEL_NAME in the env files is the monitored name');
  const sentinels = parse.hostPortList(EXAMPLES['REDIS_SENTINELS']!.value);
  assert.ok(sentinels.every((x) => x.port === Number(/^port (\d+)$/m.exec(conf)?.[1])), 'REDIS_SENTINELS use sentinel.conf\'s port');
  assert.ok(sentinels.length >= 3 && sentinels.length % 2 === 1, 'an odd number of sentinels, at least 3');
  assert.ok(Number(monitor[4]) > sentinels.length / 2, 'the quorum is a majority');
  for (const s of SERVICES) {
    const file = envFile(s.name);
    if (!s.variables.some((v) => v.name === 'REDIS_SENTINELS')) continue;
    assert.equal(file.commented.get('REDIS_SENTINEL_NAME'), name, `${s.name}.env`);
  }

  // The file as shipped, with only this machine's addresses changed: a real sentinel over the test Redis.
  const master = new URL(redisUrl());
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'sentinel-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const local = conf
    .replace(/^port \d+$/m, `port ${port}\nbind 127.0.0.1`)
    .replace(/^sentinel announce-ip .*$/m, 'sentinel announce-ip 127.0.0.1')
    .replace(/^dir .*$/m, `dir ${dir}`)
    .replace(/^sentinel monitor (\S+) \S+ \d+ \d+$/m, `sentinel monitor $1 ${master.hostname} ${master.port} 1`);
  const file = path.join(dir, 'sentinel.conf');
  await writeFile(file, local);
  const child = spawn('redis-server', [file, '--sentinel'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const redis = connectRedis(
    { redisUrl: undefined, redisSentinels: [{ host: '127.0.0.1', port }], redisSentinelName: name },
    { connectionName: 'deploy-test-sentinel', commandTimeoutMs: 1000 },
  );
  redis.on('error', () => undefined);
  t.after(() => redis.disconnect());
  await eventually(async () => (await redis.ping().catch(() => '')) === 'PONG', 10_000, 50).catch(() => {
    throw new Error(`no master through the sentinel (exit ${child.exitCode}): ${stderr}`);
  });
  const info = await redis.info('server');
  assert.match(info, new RegExp(`^tcp_port:${master.port}\\r?$`, 'm'), 'the sentinel handed out the monitored master');
});

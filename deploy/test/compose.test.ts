import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../../cli/src/cli.js';
import { startHarness, TEST_TOKEN } from '../../test-support/control-plane.js';
import type { DeployedService, ServiceName } from '../services.js';
import { LOOPBACK_OR_ANY, hostPort, interpolate, list, loadService, obj, readYaml, refusal, repoPath, serviceOfCommand, undeclared, type Json } from './deploy-files.js';

const compose = obj(readYaml('deploy', 'compose.yaml')[0], 'compose.yaml');
const services = obj(compose['services'], 'services');

interface Running {
  /** The compose service. */
  name: string;
  def: Json;
  /** Ours that it runs. */
  service: DeployedService;
  env: Record<string, string>;
}

function command(def: Json): string[] {
  return list(def['command'] ?? [], 'command').map((a) => interpolate(String(a)));
}

function environment(def: Json, where: string): Record<string, string> {
  const raw = def['environment'] ?? {};
  // Both compose forms: a mapping, or a list of NAME=value.
  const pairs: Array<[string, unknown]> = Array.isArray(raw) ? raw.map((item) => String(item).split(/=(.*)/s).slice(0, 2) as [string, string]) : Object.entries(obj(raw, where));
  return Object.fromEntries(pairs.map(([k, v]) => [k, interpolate(v === null || v === undefined ? '' : String(v))]));
}

/** Every compose service that runs one of ours, with its environment as compose passes it. */
const running: Running[] = Object.entries(services).flatMap(([name, raw]) => {
  const def = obj(raw, name);
  const service = serviceOfCommand(command(def));
  return service === undefined ? [] : [{ name, def, service, env: environment(def, `${name}.environment`) }];
});

const byService = (s: ServiceName) => running.filter((r) => r.service.name === s);
const load = (r: Running) => loadService(r.service.name, r.env);

test('compose runs a control plane, two routers and a log-shipper, each with names it declares and all it requires', () => {
  assert.equal(byService('control-plane').length, 1);
  assert.equal(byService('router').length, 2);
  assert.equal(byService('log-shipper').length, 1);
  for (const r of running) {
    assert.deepEqual(undeclared(r.service, Object.keys(r.env)), [], `${r.name}: variables its service does not declare`);
    assert.equal(refusal(r.service.name, r.env), null, `${r.name} starts with its environment`);
    const build = obj(r.def['build'], `${r.name}.build`);
    assert.ok(existsSync(path.join(repoPath('deploy'), String(build['context']), String(build['dockerfile']))), `${r.name}: the Dockerfile`);
  }
});

test('compose healthchecks probe the port and path each service serves them on', () => {
  for (const r of running) {
    const loaded = load(r);
    const hc = list(obj(r.def['healthcheck'], `${r.name}.healthcheck`)['test'], `${r.name}.healthcheck.test`).map(String);
    assert.deepEqual(hc.slice(0, 3), ['CMD', 'node', 'dist/deploy/healthcheck.js'], `${r.name}: the image's healthcheck script`);
    const url = new URL(hc[3]!);
    assert.equal(url.hostname, '127.0.0.1', `${r.name}: checked from inside the container`);
    assert.ok(LOOPBACK_OR_ANY.has(loaded.probe.host), `${r.name}: its probe listener (${loaded.probe.host}) answers on 127.0.0.1`);
    assert.equal(Number(url.port), loaded.probe.port, `${r.name}: healthcheck port`);
    assert.equal(url.pathname, '/readyz', `${r.name}: healthcheck path`);
  }
  const redis = obj(services['redis'], 'redis');
  assert.deepEqual(obj(redis['healthcheck'], 'redis.healthcheck')['test'], ['CMD', 'redis-cli', 'ping']);
});

test('compose wires the services to each other: Redis, the log-shipper, shared variables, tokens, ports', () => {
  const loaded = new Map(running.map((r) => [r.name, load(r)]));
  const [shipper] = byService('log-shipper');
  const [cp] = byService('control-plane');
  for (const r of running) {
    if (r.env['REDIS_URL'] !== undefined) {
      const redis = hostPort(r.env['REDIS_URL']);
      assert.ok(services[redis.host] !== undefined && redis.port === 6379, `${r.name}: REDIS_URL names the redis service`);
    }
  }
  for (const r of byService('router')) {
    const target = hostPort(r.env['LOG_SHIPPER_URL'] ?? '');
    assert.equal(target.host, shipper!.name, `${r.name}: LOG_SHIPPER_URL names the log-shipper service`);
    assert.equal(target.port, loaded.get(shipper!.name)!.listeners['logs']!.port, `${r.name}: LOG_SHIPPER_URL port`);
    assert.ok(loaded.get(shipper!.name)!.tokens!.includes(r.env['LOG_SHIPPER_TOKEN'] ?? ''), `${r.name}: LOG_SHIPPER_TOKEN is one the shipper accepts`);
    // Routers and the control plane must agree on these (docs/OPERATIONS.md, Running the router).
    for (const shared of ['REDIS_URL', 'REDIS_PREFIX', 'PLATFORM_DOMAIN', 'KEY_ENCRYPTION_KEY']) {
      assert.equal(r.env[shared], cp!.env[shared], `${r.name} and ${cp!.name} agree on ${shared}`);
    }
    // force_https redirects to ROUTER_HTTPS_PORT: it must be the port clients reach.
    const router = loaded.get(r.name)!;
    const published = list(r.def['ports'], `${r.name}.ports`).map((p) => String(p).split(':').map(Number));
    const http = published.find((p) => p.at(-1) === router.listeners['http']!.port);
    const https = published.find((p) => p.at(-1) === router.listeners['https']!.port);
    assert.ok(http, `${r.name}: publishes ROUTER_HTTP_PORT`);
    assert.ok(https, `${r.name}: publishes ROUTER_HTTPS_PORT`);
    assert.equal(https.at(-2), router.listeners['https']!.port, `${r.name}: ROUTER_HTTPS_PORT is the host port clients use`);
  }
  const hostPorts = running.flatMap((r) => list(r.def['ports'] ?? [], 'ports').map((p) => String(p).split(':').slice(0, -1).join(':')));
  assert.equal(new Set(hostPorts).size, hostPorts.length, 'no host port published twice');
});

test('deploy-demo sends its event with routerctl to the control plane, routing the demo app to the demo container', async (t) => {
  const demo = obj(services['deploy-demo'], 'deploy-demo');
  const argv = command(demo);
  assert.deepEqual(argv.slice(0, 4), ['node', 'dist/cli/src/main.js', 'events', 'send']);
  const mount = list(demo['volumes'], 'deploy-demo.volumes').map(String).find((v) => v.split(':')[1] === argv[4]);
  assert.ok(mount, 'the event file is mounted where the command reads it');
  const file = path.join(repoPath('deploy'), mount.split(':')[0]!);
  const flag = (name: string): string => argv[argv.indexOf(name) + 1] ?? '';
  const target = new URL(flag('--url'));
  const [cp] = byService('control-plane');
  assert.equal(target.hostname, cp!.name, '--url names the control-plane service');
  assert.equal(Number(target.port), load(cp!).listeners['http']!.port, '--url port');
  assert.ok(load(cp!).tokens!.includes(flag('--token')), '--token is one the control plane accepts');
  assert.equal(obj(obj(demo['depends_on'], 'depends_on')[cp!.name], 'depends_on.control-plane')['condition'], 'service_healthy');

  // The same command against a real control plane (its own URL and token: the rest is the file).
  const platformDomain = cp!.env['PLATFORM_DOMAIN'] ?? '';
  const h = await startHarness('deploy-demo', { PLATFORM_DOMAIN: platformDomain });
  t.after(() => h.close());
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['events', 'send', file, '--url', h.base, '--token', TEST_TOKEN], {}, (s) => out.push(s), (s) => err.push(s));
  assert.equal(code, 0, err.join('\n'));
  const route = await h.get(`/v1/routes/demo.${platformDomain}`);
  assert.equal(route.status, 200, JSON.stringify(route.body));
  const containers = (route.body as { containers: Array<{ host: string; port: number }> }).containers;
  assert.equal(containers.length, 1);
  const app = obj(services[containers[0]!.host], `the container host ${containers[0]!.host} is a compose service`);
  assert.match(String(app['image']), /^traefik\/whoami:/, 'the demo app');
  assert.equal(containers[0]!.port, 80, 'whoami listens on 80');
  // The header's `curl http://demo.localhost:8080/` is that hostname.
  assert.equal(platformDomain, 'localhost');
});

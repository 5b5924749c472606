/**
 * The health paths compose and Kubernetes probe, asked of the real services: a healthcheck
 * on a path nobody serves would keep a container unhealthy forever. Compose healthchecks run
 * as compose runs them (node dist/deploy/healthcheck.js <url>), with the live port.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startHarness } from '../../test-support/control-plane.js';
import { freePort, spawnRouter, type RouterProcess } from '../../test-support/router-process.js';
import { eventually } from '../../test-support/router.js';
import type { ServiceName } from '../services.js';
import { NOT_MERGED_ENTRIES, isObject, list, obj, readYaml, repoPath, serviceOfCommand } from './deploy-files.js';

const run = promisify(execFile);
const HEALTHCHECK = repoPath('dist', 'deploy', 'healthcheck.js');

interface Probe {
  where: string;
  service: ServiceName;
  path: string;
  /** A compose healthcheck: run its command. */
  compose: boolean;
}

function probes(): Probe[] {
  const out: Probe[] = [];
  const compose = obj(obj(readYaml('deploy', 'compose.yaml')[0], 'compose')['services'], 'services');
  for (const [name, raw] of Object.entries(compose)) {
    const def = obj(raw, name);
    const s = serviceOfCommand(list(def['command'] ?? [], 'command'));
    const hc = isObject(def['healthcheck']) ? def['healthcheck']['test'] : undefined;
    if (s === undefined || !Array.isArray(hc)) continue;
    out.push({ where: `compose ${name}`, service: s.name, path: new URL(String(hc[3])).pathname, compose: true });
  }
  const kustomization = obj(readYaml('deploy', 'kubernetes', 'kustomization.yaml')[0], 'kustomization');
  for (const file of list(kustomization['resources'], 'resources').map(String)) {
    for (const doc of readYaml('deploy', 'kubernetes', file)) {
      const spec = isObject(doc) && isObject(doc['spec']) && isObject(doc['spec']['template']) ? doc['spec']['template']['spec'] : undefined;
      if (!isObject(spec)) continue;
      for (const c of list(spec['containers'], 'containers').map((x) => obj(x, 'container'))) {
        const s = serviceOfCommand(list(c['command'], 'command'))!;
        for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
          const probe = c[kind];
          if (isObject(probe) && isObject(probe['httpGet'])) out.push({ where: `kubernetes ${file} ${kind}`, service: s.name, path: String(probe['httpGet']['path']), compose: false });
        }
      }
    }
  }
  return out;
}

const all = probes();

/** Asks `url` the way the probe does: the compose command, or a plain GET as the kubelet does. */
async function ask(p: Probe, url: string): Promise<string | null> {
  if (p.compose) {
    const result = await run(process.execPath, [HEALTHCHECK, url]).catch((err: { code: number; stderr: string }) => err);
    return 'code' in result && result.code !== 0 ? `exit ${result.code}: ${result.stderr}` : null;
  }
  const res = await fetch(url);
  return res.status === 200 ? null : `${res.status} ${await res.text()}`;
}

async function expectAnswered(service: ServiceName, port: number): Promise<void> {
  const mine = all.filter((p) => p.service === service);
  assert.ok(mine.length > 0, `${service} is probed somewhere`);
  for (const p of mine) {
    let last: string | null = 'not asked';
    // Readiness may take a moment after start (routers: every worker subscribed).
    await eventually(async () => (last = await ask(p, `http://127.0.0.1:${port}${p.path}`)) === null, 15_000, 100).catch(() => {
      throw new Error(`${p.where}: ${p.path} on the ${service}: ${last}`);
    });
  }
}

test('the healthcheck script: 2xx is healthy; another status, no answer or no URL is not', async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/ok' ? 200 : 503, { 'content-type': 'application/json' });
    res.end('{"status":"x"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const exit = (args: string[]) => run(process.execPath, [HEALTHCHECK, ...args]).then(() => 0, (err: { code: number }) => err.code);
  assert.equal(await exit([`http://127.0.0.1:${port}/ok`]), 0);
  assert.equal(await exit([`http://127.0.0.1:${port}/readyz`]), 1);
  assert.equal(await exit([`http://127.0.0.1:${await freePort()}/readyz`]), 1);
  assert.equal(await exit([]), 1);
});

test('the control plane answers every path it is probed on', async (t) => {
  const h = await startHarness('deploy-probes');
  t.after(() => h.close());
  await expectAnswered('control-plane', h.cp.restPort);
});

test('the router (cluster primary and workers) answers every path it is probed on, on its admin port', async (t) => {
  const h = await startHarness('deploy-probes-router');
  let router: RouterProcess | undefined;
  // The router first, so it writes no heartbeat after the harness removed its keys.
  t.after(async () => {
    router?.kill();
    await h.close();
  });
  router = await spawnRouter(h.prefix);
  await expectAnswered('router', router.adminPort);
});

test('the log-shipper answers every path it is probed on', async (t) => {
  const entry = 'dist/log-shipper/src/main.js';
  if (NOT_MERGED_ENTRIES.has(entry) && !existsSync(repoPath(entry))) {
    const paths = [...new Set(all.filter((p) => p.service === 'log-shipper').map((p) => p.path))];
    t.diagnostic(`the log-shipper is not on this branch yet: its probe paths (${paths.join(', ')}) are not asked of a live process`);
    // Its HTTP API on the shipper branch (log-shipper/src/http/api.ts) serves these two.
    assert.deepEqual(paths.filter((p) => p !== '/healthz' && p !== '/readyz'), []);
    return;
  }
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'deploy-probes-'));
  const child = spawn(process.execPath, [repoPath(entry)], {
    env: { ...process.env, LOG_SHIPPER_HOST: '127.0.0.1', LOG_SHIPPER_PORT: String(port), LOG_SHIPPER_TOKEN: 'deploy-probes-token', LOG_DIR: dir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  await expectAnswered('log-shipper', port);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sourcePath } from '../../proto/source-path.js';
import { SHIPPER_TOKEN, startTestShipper } from '../../test-support/log-shipper.js';
import { freePort } from '../../test-support/router-process.js';
import { eventually, routerRequest, startStack, startUpstream } from '../../test-support/router.js';

/** Router → log-shipper → files, end to end: real router, real shipper, real requests. */

interface Line {
  app: string;
  request_id: string;
  status: number;
  host: string;
}

// Only whole lines: a read can catch the shipper in the middle of an append.
const parse = (text: string): Line[] =>
  text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

test('N requests give exactly N lines in the app\'s file; unknown hosts go to _unrouted', async () => {
  const shipper = await startTestShipper();
  const up = await startUpstream('e2e-c1');
  // accessLog: undefined keeps the router's own sink — the batches to the shipper.
  const stack = await startStack('e2e-logs', { LOG_SHIPPER_URL: `127.0.0.1:${shipper.port}`, LOG_SHIPPER_TOKEN: SHIPPER_TOKEN, LOG_BATCH_MS: '50' }, { accessLog: undefined });
  try {
    await stack.h.deploy('e2e-logs', [up.container]);
    const N = 300;
    const ids = new Set<string>();
    for (let i = 0; i < N; i += 30) {
      const answers = await Promise.all(Array.from({ length: Math.min(30, N - i) }, () => routerRequest(stack.router.port, 'e2e-logs.localhost', '/x')));
      for (const a of answers) {
        assert.equal(a.status, 200);
        ids.add(String(a.headers['x-request-id']));
      }
    }
    for (let i = 0; i < 20; i++) assert.equal((await routerRequest(stack.router.port, `nobody-${i}.example.org`)).status, 404);
    await eventually(async () => parse(await shipper.read('e2e-logs')).length >= N && parse(await shipper.read('_unrouted')).length >= 20, 10_000, 20);
    const lines = parse(await shipper.read('e2e-logs'));
    assert.equal(lines.length, N, 'exactly N, none twice');
    assert.deepEqual(new Set(lines.map((l) => l.request_id)), ids, 'the request ids the clients saw');
    assert.ok(lines.every((l) => l.app === 'e2e-logs' && l.status === 200));
    const unrouted = parse(await shipper.read('_unrouted'));
    assert.equal(unrouted.length, 20);
    assert.ok(unrouted.every((l) => l.app === '-' && l.status === 404 && l.host.startsWith('nobody-')));
  } finally {
    await stack.close();
    await up.close();
    await shipper.close();
  }
});

function startShipperProcess(port: number, dir: string): ChildProcess {
  return spawn(process.execPath, [sourcePath(import.meta.url, '..', '..', 'dist', 'log-shipper', 'src', 'main.js')], {
    env: { PATH: process.env['PATH'] ?? '', LOG_SHIPPER_HOST: '127.0.0.1', LOG_SHIPPER_PORT: String(port), LOG_SHIPPER_TOKEN: SHIPPER_TOKEN, LOG_DIR: dir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
  } catch {
    return false;
  }
}

test('the log-shipper killed (SIGKILL) and restarted under load: every line arrives; duplicates only from retransmitted batches', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'e2e-shipper-kill-'));
  const port = await freePort();
  let shipper = startShipperProcess(port, dir);
  const up = await startUpstream('kill-c1');
  const stack = await startStack('e2e-kill', { LOG_SHIPPER_URL: `127.0.0.1:${port}`, LOG_SHIPPER_TOKEN: SHIPPER_TOKEN, LOG_BATCH_MS: '20' }, { accessLog: undefined });
  try {
    await eventually(() => healthy(port), 10_000, 50);
    await stack.h.deploy('kill-app', [up.container]);
    const ids = new Set<string>();
    let failures = 0;
    const load = async (ms: number): Promise<void> => {
      const end = performance.now() + ms;
      while (performance.now() < end) {
        const answers = await Promise.all(Array.from({ length: 5 }, () => routerRequest(stack.router.port, 'kill-app.localhost', '/k')));
        for (const a of answers) {
          if (a.status !== 200) failures++;
          ids.add(String(a.headers['x-request-id']));
        }
      }
    };
    await load(700);
    shipper.kill('SIGKILL');
    await new Promise((resolve) => shipper.once('exit', resolve));
    await load(700); // lines pile up in the router's spool meanwhile
    shipper = startShipperProcess(port, dir);
    await load(700);
    assert.equal(failures, 0, 'proxying never waits on the shipper');

    const file = join(dir, 'kill-app', 'router.log');
    const read = async (): Promise<Line[]> => parse(await readFile(file, 'utf8').catch(() => ''));
    await eventually(async () => new Set((await read()).map((l) => l.request_id)).size >= ids.size, 20_000, 50);
    const lines = await read();
    assert.deepEqual(new Set(lines.map((l) => l.request_id)), ids, 'every request has its line');
    const duplicates = lines.length - ids.size;
    const retransmitted = Number(/router_access_log_retransmitted_batches_total (\d+)/.exec(await stack.router.metrics.registry.metrics())?.[1] ?? 0);
    assert.ok(duplicates === 0 || retransmitted > 0, `${duplicates} duplicate lines with ${retransmitted} retransmitted batches`);
  } finally {
    await stack.close();
    await up.close();
    shipper.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

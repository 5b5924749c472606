import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { startHarness, type Harness } from '../../test-support/control-plane.js';
import { spawnRouter, type RouterProcess } from '../../test-support/router-process.js';
import { eventually } from '../../test-support/router.js';

/**
 * `kill -HUP <primary>` (systemctl reload) under load: every worker replaced one at a time,
 * no request failing, WebSockets held by the old workers until the drain timeout and then
 * closed with 1001 — never reset.
 */
const DRAIN_MS = 3_000;
const SOCKETS = 200;
const RATE = 200;

let h: Harness;
let container: http.Server;
let wss: WebSocketServer;
let router: RouterProcess;

before(async () => {
  h = await startHarness('upgrade');
  container = http.createServer((req, res) => res.end(`ok ${req.url}`));
  wss = new WebSocketServer({ server: container });
  wss.on('connection', (s) => s.on('message', (d) => s.send(String(d))));
  await new Promise<void>((resolve) => container.listen(0, '127.0.0.1', resolve));
  const port = (container.address() as AddressInfo).port;
  router = await spawnRouter(h.prefix, { ROUTER_DRAIN_TIMEOUT: String(DRAIN_MS) });
  await h.deploy('upg', [{ id: 'c1', host: '127.0.0.1', port }]);
});

after(async () => {
  router.kill();
  for (const c of wss.clients) c.terminate();
  wss.close();
  container.closeAllConnections();
  await new Promise<void>((resolve) => container.close(() => resolve()));
  await h.close();
});

interface Socket {
  ws: WebSocket;
  code: number | null;
  closedAt: number;
  echoes: number;
}

test('two upgrades under constant load: 0 failed requests, WebSockets closed 1001 only after the drain timeout', async () => {
  const pool = new Pool(`http://127.0.0.1:${router.httpPort}`, { connections: 16 });
  await eventually(async () => (await pool.request({ path: '/', method: 'GET', headers: { host: 'upg.localhost' } }).then((r) => r.body.text().then(() => r.statusCode))) === 200, 5_000, 20);

  const sockets: Socket[] = [];
  for (let i = 0; i < SOCKETS; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${router.httpPort}/`, { headers: { host: 'upg.localhost' } });
    const s: Socket = { ws, code: null, closedAt: 0, echoes: 0 };
    ws.on('message', () => s.echoes++);
    ws.on('close', (code) => {
      s.code = code;
      s.closedAt = performance.now();
    });
    ws.on('error', () => undefined);
    sockets.push(s);
  }
  await Promise.all(sockets.map((s) => new Promise((resolve, reject) => s.ws.once('open', resolve).once('error', reject))));

  // Constant rate, not closed loop: a request every 1000/RATE ms whatever the answers do.
  let sent = 0;
  const failures: string[] = [];
  const pending = new Set<Promise<void>>();
  let loading = true;
  const load = (async () => {
    const start = performance.now();
    while (loading) {
      const p = pool
        .request({ path: `/r${sent}`, method: 'GET', headers: { host: 'upg.localhost' } })
        .then(async (res) => {
          const body = await res.body.text();
          if (res.statusCode !== 200) failures.push(`${res.statusCode} ${body.slice(0, 80)}`);
        })
        .catch((err: Error) => void failures.push(err.message))
        .finally(() => pending.delete(p));
      pending.add(p);
      sent++;
      const next = start + (sent * 1000) / RATE;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
    }
  })();
  // Echoes on every open socket through the upgrades.
  const pinger = setInterval(() => {
    for (const s of sockets) if (s.ws.readyState === WebSocket.OPEN) s.ws.send('ping');
  }, 250);

  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const firstPids = router.lines.filter((l) => l['msg'] === 'router worker listening').map((l) => l['workerPid']);
    assert.equal(firstPids.length, 2);

    const mark1 = router.lines.length;
    const firstUpgrade = performance.now();
    router.child.kill('SIGHUP');
    await router.waitForLine((l) => l['msg'] === 'router workers upgraded', 30_000, mark1);
    // The second upgrade while the first one's workers still drain their WebSockets.
    const mark2 = router.lines.length;
    router.child.kill('SIGHUP');
    await router.waitForLine((l) => l['msg'] === 'router workers upgraded', 30_000, mark2);
    await eventually(async () => sockets.every((s) => s.code !== null), DRAIN_MS + 10_000, 50);
    await new Promise((resolve) => setTimeout(resolve, 500));
    loading = false;
    await load;
    await Promise.all([...pending]);

    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(sent >= RATE * 3, `load ran (${sent} requests)`);
    const codes = new Map<number, number>();
    for (const s of sockets) codes.set(s.code!, (codes.get(s.code!) ?? 0) + 1);
    assert.deepEqual([...codes], [[1001, SOCKETS]], 'every WebSocket got a close frame 1001, none was reset');
    const earliest = Math.min(...sockets.map((s) => s.closedAt)) - firstUpgrade;
    assert.ok(earliest >= DRAIN_MS * 0.9, `no WebSocket closed before the drain timeout (first after ${Math.round(earliest)} ms)`);
    assert.ok(sockets.every((s) => s.echoes > 0), 'every socket echoed during the upgrades');

    const pids = router.lines.filter((l) => l['msg'] === 'router worker listening').map((l) => l['workerPid']);
    assert.equal(new Set(pids).size, 6, 'two workers replaced twice');
    await eventually(async () => router.lines.filter((l) => l['msg'] === 'retired router worker finished draining').length === 4, 15_000, 50);
    assert.equal((await router.admin('/readyz')).status, 200);
    // New sockets work on the new workers.
    const fresh = new WebSocket(`ws://127.0.0.1:${router.httpPort}/`, { headers: { host: 'upg.localhost' } });
    await new Promise((resolve, reject) => fresh.once('open', resolve).once('error', reject));
    fresh.send('hello');
    assert.equal(String(await new Promise((resolve) => fresh.once('message', resolve))), 'hello');
    fresh.close();
  } finally {
    loading = false;
    clearInterval(pinger);
    for (const s of sockets) s.ws.terminate();
    await pool.close();
  }
});

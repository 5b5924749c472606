import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { hostRecord, metricValue, refusedPort, startRouter, startUpstream, until, type Harness, type Upstream } from './proxy-harness.test.js';
import type { Container } from '../../proto/records.js';

interface WsUpstream {
  id: string;
  container: Container;
  handshakes: http.IncomingMessage[];
  closed: number;
  close(): Promise<void>;
}

/** A container echoing every message as `<id>:<message>`. */
async function startWsUpstream(id: string): Promise<WsUpstream> {
  const server = http.createServer((_req, res) => res.end(`${id} http`));
  const wss = new WebSocketServer({ server });
  const up: WsUpstream = { id, container: { id, host: '127.0.0.1', port: 0 }, handshakes: [], closed: 0, close: async () => undefined };
  wss.on('connection', (socket, req) => {
    up.handshakes.push(req);
    socket.on('message', (data) => socket.send(`${id}:${String(data)}`));
    socket.on('close', () => up.closed++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.container.port = (server.address() as AddressInfo).port;
  up.close = () =>
    new Promise<void>((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return up;
}

let h: Harness;
let w1: WsUpstream;
let w2: WsUpstream;
let plain: Upstream;

before(async () => {
  w1 = await startWsUpstream('w1');
  w2 = await startWsUpstream('w2');
  plain = await startUpstream('plain');
  h = await startRouter({ ROUTER_WS_IDLE_TIMEOUT: '400' });
  h.routes.set('ws.localhost', hostRecord('ws', [w1.container]));
});
after(async () => {
  await h.close();
  await Promise.all([w1.close(), w2.close(), plain.close()]);
});

function connect(host: string, path = '/socket'): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}${path}`, { headers: { host } });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
  });
}

function echo(ws: WebSocket, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(String(data)));
    ws.once('close', () => reject(new Error('closed')));
    ws.send(message);
  });
}

function closed(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve(-1) : ws.once('close', (code) => resolve(code))));
}

test('echo through the router, with the forwarded headers; one access-log line at close', async () => {
  const ws = await connect('ws.localhost');
  assert.equal(await echo(ws, 'hello'), 'w1:hello');
  assert.equal(await echo(ws, 'again'), 'w1:again');
  const hs = w1.handshakes.at(-1)!;
  assert.equal(hs.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(hs.headers['x-forwarded-proto'], 'http');
  assert.equal(hs.headers['via'], '1.1 platform-router');
  assert.match(String(hs.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  assert.equal(hs.url, '/socket');
  assert.equal(h.router.stats().websockets, 1);
  assert.equal(await metricValue(h.metrics, 'router_websockets_open'), 1);
  assert.equal(h.lines.filter((l) => l.protocol === 'websocket').length, 0, 'no line while open');

  ws.close();
  await closed(ws);
  assert.ok(await until(() => h.router.stats().websockets === 0));
  assert.equal(await metricValue(h.metrics, 'router_websockets_open'), 0);
  const line = h.lines.find((l) => l.protocol === 'websocket');
  assert.ok(line);
  assert.equal(line.status, 101);
  assert.equal(line.app, 'ws');
  assert.equal(line.container, 'w1');
  assert.equal(line.path, '/socket');
  assert.ok(line.bytes_in > 0 && line.bytes_out > 0, `bytes ${line.bytes_in}/${line.bytes_out}`);
  assert.ok(line.service_ms >= 0);
});

test('an open socket keeps echoing through 100 scale events of its app and changes of others', async () => {
  const ws = await connect('ws.localhost');
  assert.equal(await echo(ws, 'start'), 'w1:start');
  for (let i = 0; i < 100; i++) {
    // Its own app scales: sometimes without w1 at all, sometimes stopped; new records each time.
    const containers = i % 3 === 0 ? [w2.container] : i % 3 === 1 ? [w2.container, plain.container] : [w1.container, w2.container];
    h.routes.set('ws.localhost', hostRecord('ws', containers, {}, i % 10 === 5 ? 'stopped' : 'running'));
    h.routes.set(`other${i % 5}.localhost`, hostRecord(`other${i % 5}`, [plain.container, { id: `x${i}`, host: '127.0.0.1', port: 1 }]));
    // New traffic rebuilds the balancer state for the app meanwhile.
    if (i % 10 !== 5) await fetch(`http://127.0.0.1:${h.port}/`, { headers: { host: 'ws.localhost' } }).then((r) => r.text());
    assert.equal(await echo(ws, `m${i}`), `w1:m${i}`);
  }
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.close();
  await closed(ws);
  h.routes.set('ws.localhost', hostRecord('ws', [w1.container]));
});

test('no traffic either way for the WebSocket idle timeout → both sides closed, IDLE_TIMEOUT logged', async () => {
  const ws = await connect('ws.localhost');
  // Traffic keeps it open past the timeout...
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(await echo(ws, `keep${i}`), `w1:keep${i}`);
  }
  // ...silence closes it.
  const started = Date.now();
  assert.equal(ws.readyState, WebSocket.OPEN);
  const upstreamClosed = w1.closed;
  await closed(ws);
  const after = Date.now() - started;
  assert.ok(after >= 350 && after < 2500, `closed after ${after} ms`);
  assert.ok(await until(() => w1.closed === upstreamClosed + 1), 'the container side was closed too');
  assert.equal(h.lines.filter((l) => l.protocol === 'websocket').at(-1)?.code, 'IDLE_TIMEOUT');
});

test('a refusing container is ejected and the upgrade goes to another; all refusing → 502', async () => {
  const dead = { id: 'dead', host: '127.0.0.1', port: await refusedPort() };
  h.routes.set('wsretry.localhost', hostRecord('wsretry', [dead, w2.container], { balancer: 'round_robin' }));
  const ejections = await metricValue(h.metrics, 'router_container_ejections_total');
  const ws = await connect('wsretry.localhost');
  assert.equal(await echo(ws, 'x'), 'w2:x');
  assert.equal(await metricValue(h.metrics, 'router_container_ejections_total'), ejections + 1);
  ws.close();
  await closed(ws);

  const dead2 = { id: 'dead2', host: '127.0.0.1', port: await refusedPort() };
  h.routes.set('wsdown.localhost', hostRecord('wsdown', [dead, dead2]));
  await assert.rejects(connect('wsdown.localhost'), /status 502/);
  const line = h.lines.filter((l) => l.host === 'wsdown.localhost').at(-1);
  assert.equal(line?.code, 'UPSTREAM_REFUSED');
  assert.equal(line?.protocol, 'websocket');
});

test('upgrades for unknown, stopped or invalid hosts get the router answers', async () => {
  await assert.rejects(connect('nobody.localhost'), /status 404/);
  h.routes.set('wsstopped.localhost', hostRecord('wsstopped', [], {}, 'stopped'));
  await assert.rejects(connect('wsstopped.localhost'), /status 503/);
  await assert.rejects(connect('bad_host'), /status 400/);
  assert.equal(h.router.stats().websockets, 0);
});

test('the container closing ends the client side too', async () => {
  const ws = await connect('ws.localhost');
  assert.equal(await echo(ws, 'bye'), 'w1:bye');
  const opened = h.router.stats().websockets;
  assert.equal(opened, 1);
  await w1.close();
  await closed(ws);
  assert.ok(await until(() => h.router.stats().websockets === 0));
  w1 = await startWsUpstream('w1');
  h.routes.set('ws.localhost', hostRecord('ws', [w1.container]));
});

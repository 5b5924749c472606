/**
 * WebSocket survival: many WebSockets open through the router while their app is scaled back
 * and forth (and other apps deployed). A socket closed by anyone but us is dropped; at the end
 * every socket must still echo. The echo containers run in this process: four ws servers, so
 * the app can alternate between two sets of two that all answer, as a real scale event leaves
 * the old containers running until they are stopped.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { container, type Container, type Platform } from './platform.js';
import { HOST, sleep } from './processes.js';
import type { Progress } from './progress.js';

export const WS_APP = 'ws';

interface Echo {
  container: Container;
  close(): Promise<void>;
}

async function startEcho(id: string): Promise<Echo> {
  const server = http.createServer((_req, res) => res.end(id));
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  // The reply names the container, so the client knows where its socket landed.
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`${id}:${data.toString()}`)));
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    container: container(id, (server.address() as AddressInfo).port),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

class Socket {
  closedByPeer = false;
  closeCode = 0;
  container = '';
  private pending: { text: string; resolve: (ok: boolean) => void; timer: NodeJS.Timeout } | null = null;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      const colon = text.indexOf(':');
      const p = this.pending;
      if (p !== null && text.slice(colon + 1) === p.text) {
        this.container = text.slice(0, colon);
        clearTimeout(p.timer);
        this.pending = null;
        p.resolve(true);
      }
    });
  }

  get busy(): boolean {
    return this.pending !== null;
  }

  echo(text: string, timeoutMs: number): Promise<boolean> {
    if (this.ws.readyState !== WebSocket.OPEN || this.pending !== null) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending = null;
        resolve(false);
      }, timeoutMs);
      this.pending = { text, resolve, timer };
      this.ws.send(text);
    });
  }
}

function open(port: number, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${port}/socket`, { headers: { host: `${WS_APP}.localhost` }, perMessageDeflate: false, handshakeTimeout: timeoutMs });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

export interface WebSocketResult {
  sockets: number;
  opened: number;
  openFailures: number;
  scaleEvents: number;
  otherDeploys: number;
  eventFailures: number;
  /** Closed by the router or a container during the run: must be 0. */
  dropped: number;
  dropCodes: Record<string, number>;
  /** Echoes sent on random sockets while the events ran, and how many did not come back in 2 s. */
  heartbeats: number;
  heartbeatFailures: number;
  /** Sockets that echoed at the end. */
  echoedAtEnd: number;
  /** Where the sockets were at the end, by container. */
  byContainer: Record<string, number>;
  /** New sockets opened after the last event that landed on the app's current containers. */
  newOnCurrentSet: number;
  newOpened: number;
}

export async function websocketSurvival(platform: Platform, routerPort: number, count: number, scaleEvents: number, progress: Progress): Promise<WebSocketResult> {
  const echoes = await Promise.all(['e1', 'e2', 'e3', 'e4'].map(startEcho));
  const sets = [echoes.slice(0, 2).map((e) => e.container), echoes.slice(2).map((e) => e.container)];
  const sockets: Socket[] = [];
  let closingOurselves = false;
  const dropCodes: Record<string, number> = {};
  const result: WebSocketResult = {
    sockets: count, opened: 0, openFailures: 0, scaleEvents: 0, otherDeploys: 0, eventFailures: 0, dropped: 0, dropCodes,
    heartbeats: 0, heartbeatFailures: 0, echoedAtEnd: 0, byContainer: {}, newOnCurrentSet: 0, newOpened: 0,
  };
  try {
    await platform.deploy(WS_APP, sets[0]!);
    // Batches: a thousand simultaneous handshakes would measure the accept queue, not survival.
    for (let i = 0; i < count; i += 50) {
      const batch = await Promise.allSettled(Array.from({ length: Math.min(50, count - i) }, () => open(routerPort, 10_000)));
      for (const b of batch) {
        if (b.status === 'rejected') {
          result.openFailures++;
          continue;
        }
        const s = new Socket(b.value);
        b.value.on('close', (code) => {
          if (closingOurselves) return;
          s.closedByPeer = true;
          s.closeCode = code;
          dropCodes[String(code)] = (dropCodes[String(code)] ?? 0) + 1;
        });
        b.value.on('error', () => undefined);
        sockets.push(s);
      }
    }
    result.opened = sockets.length;
    progress.note(`${sockets.length} WebSockets open (${result.openFailures} failed to open)`);

    // Traffic while the topology changes: a socket cut silently (no close frame) shows up here.
    let stopBeats = false;
    let cursor = 0;
    const beats = (async () => {
      const deadline = performance.now() + scaleEvents * 200 + 60_000;
      while (!stopBeats && performance.now() < deadline && sockets.length > 0) {
        const batch: Array<Promise<boolean>> = [];
        for (let j = 0; j < 10; j++) {
          const s = sockets[cursor++ % sockets.length]!;
          if (s.busy) continue;
          result.heartbeats++;
          batch.push(s.echo(`hb-${result.heartbeats}`, 2_000));
        }
        for (const ok of await Promise.all(batch)) if (!ok) result.heartbeatFailures++;
        await sleep(20);
      }
    })();

    for (let k = 1; k <= scaleEvents; k++) {
      try {
        await platform.scale(WS_APP, sets[k % 2]!);
        result.scaleEvents++;
        // Other apps change too: their invalidations and cache misses must not touch these sockets.
        if (k % 5 === 0) {
          await platform.deploy(`ws-other-${k % 20}`, sets[(k + 1) % 2]!);
          result.otherDeploys++;
        }
      } catch (err) {
        result.eventFailures++;
        process.stderr.write(`  event ${k} failed: ${(err as Error).message}\n`);
      }
      if (k % 25 === 0) progress.note(`${k}/${scaleEvents} scale events`);
      await sleep(30);
    }
    stopBeats = true;
    await beats;
    await sleep(500);

    const finals = await Promise.all(sockets.map((s, i) => s.echo(`final-${i}`, 10_000)));
    result.echoedAtEnd = finals.filter(Boolean).length;
    for (const s of sockets) if (s.container !== '') result.byContainer[s.container] = (result.byContainer[s.container] ?? 0) + 1;
    result.dropped = sockets.filter((s) => s.closedByPeer).length;

    // The last event's set is where new sockets must go.
    const current = new Set(sets[scaleEvents % 2]!.map((c) => c.id));
    for (let i = 0; i < 20; i++) {
      try {
        const ws = await open(routerPort, 5_000);
        const s = new Socket(ws);
        result.newOpened++;
        if ((await s.echo('new', 5_000)) && current.has(s.container)) result.newOnCurrentSet++;
        ws.terminate();
      } catch {
        // counted by newOpened
      }
    }
  } finally {
    closingOurselves = true;
    await Promise.race([
      Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
        if (s.ws.readyState === WebSocket.CLOSED) return resolve();
        s.ws.once('close', () => resolve());
        s.ws.close();
      }))),
      sleep(5_000),
    ]);
    for (const s of sockets) s.ws.terminate();
    await Promise.all(echoes.map((e) => e.close()));
  }
  return result;
}

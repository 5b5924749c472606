/**
 * The DevTools protocol over a process's inspector WebSocket (a router started with
 * `--inspect=127.0.0.1:0`; each cluster worker gets its own, announced in the log as
 * "Debugger listening on ws://…"). The memory part forces collections through it; the TLS
 * benchmark starts and stops the CPU profiler around one measured window.
 */
import { WebSocket } from 'ws';
import { readText } from './processes.js';

/** One session; calls are answered in order. A profiler started in a session stops when it closes. */
export class DevtoolsSession {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message?: string } };
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      if (w === undefined) return;
      this.waiting.delete(msg.id);
      if (msg.error !== undefined) w.reject(new Error(`inspector: ${msg.error.message ?? 'error'}`));
      else w.resolve(msg.result);
    });
    ws.on('close', () => {
      for (const w of this.waiting.values()) w.reject(new Error('inspector closed'));
      this.waiting.clear();
    });
  }

  static async open(url: string, timeoutMs = 10_000): Promise<DevtoolsSession> {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => ws.terminate(), timeoutMs);
    try {
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('close', () => reject(new Error('inspector closed')));
      });
    } finally {
      clearTimeout(timer);
    }
    return new DevtoolsSession(ws);
  }

  /** Rejects after `timeoutMs` (a stopped profiler can take a while to serialize a long profile). */
  call(method: string, params: object = {}, timeoutMs = 30_000): Promise<unknown> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`inspector: ${method} took more than ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** Calls over the DevTools protocol, one at a time, bounded by `timeoutMs` in all. */
export async function devtools(url: string, calls: Array<[string, object]>, timeoutMs = 10_000): Promise<unknown[]> {
  const session = await DevtoolsSession.open(url, timeoutMs);
  const deadline = performance.now() + timeoutMs;
  try {
    const results: unknown[] = [];
    for (const [method, params] of calls) results.push(await session.call(method, params, Math.max(1, deadline - performance.now())));
    return results;
  } finally {
    session.close();
  }
}

/** The inspector URLs a router's processes announced in its log (primary and each worker). */
export async function inspectorUrls(logFile: string): Promise<string[]> {
  return [...(await readText(logFile)).matchAll(/Debugger listening on (ws:\/\/\S+)/g)].map((m) => m[1]!);
}

/**
 * Two more floors beside node-floor.ts, for `npm run bench:floors`: what a Node proxy costs
 * here without node:http's request and response objects, and without undici as well.
 *
 *   llhttp + undici  a net.Server parsing with Node's own llhttp binding (the router's
 *                    HTTP/1.1 fast path, bare), each request dispatched to an undici Pool
 *                    with a raw handler, the answer written as one buffer;
 *   llhttp raw       the same server, and upstream keep-alive sockets parsed with llhttp
 *                    too: no undici — the ceiling of any Node proxy on this machine.
 *
 * GET-only, no error handling worth the name: an experiment, never a product.
 *
 *   FLOOR_PORT=… FLOOR_UPSTREAMS=port,port FLOOR_WORKERS=2 FLOOR_CLIENT=undici|raw node dist/loadtest/router-bench/llhttp-floor.js
 */
import cluster from 'node:cluster';
import { createRequire } from 'node:module';
import net, { type Socket } from 'node:net';
import { Pool, type Dispatcher } from 'undici';

interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  [callback: number]: unknown;
}
const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: { new (): Parser; REQUEST: number; RESPONSE: number; kOnHeaders: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number };
  methods: string[];
};
const HOST = '127.0.0.1';
const STOP_AFTER_HEAD = 2;

function newParser(type: number, owner: object, onHead: (...args: never[]) => number): Parser {
  const p = new HTTPParser();
  p.initialize(type, owner, 0, 0);
  p[HTTPParser.kOnHeaders] = () => undefined;
  p[HTTPParser.kOnHeadersComplete] = onHead;
  p[HTTPParser.kOnBody] = () => undefined;
  p[HTTPParser.kOnMessageComplete] = () => undefined;
  return p;
}

function forwarded(headers: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i]!.toLowerCase();
    if (lower !== 'connection' && lower !== 'keep-alive') out.push(headers[i]!, headers[i + 1]!);
  }
  out.push('x-forwarded-for', HOST);
  return out;
}

function answer(client: Socket, head: string, body: Buffer): void {
  const out = Buffer.allocUnsafe(head.length + body.length);
  out.write(head, 0, 'latin1');
  body.copy(out, head.length);
  client.write(out);
}

/** undici's raw handler: one object per request, the answer written whole at the end. */
class UndiciExchange implements Dispatcher.DispatchHandler {
  private head = '';
  private readonly chunks: Buffer[] = [];
  constructor(private readonly client: Socket) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[], _resume: () => void, text: string): boolean {
    let head = `HTTP/1.1 ${status} ${text || 'OK'}\r\n`;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      const lower = name.toLowerCase();
      if (lower !== 'connection' && lower !== 'keep-alive' && lower !== 'transfer-encoding') head += `${name}: ${raw[i + 1]!.toString('latin1')}\r\n`;
    }
    this.head = `${head}via: 1.1 floor\r\n\r\n`;
    return true;
  }
  onData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }
  onComplete(): void {
    answer(this.client, this.head, this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks));
  }
  onError(): void {
    this.client.destroy();
  }
}

/** A keep-alive upstream connection parsed with llhttp; one request at a time. */
class RawUpstream {
  private readonly socket: Socket;
  private client: Socket | null = null;
  private head = '';
  private readonly parser: Parser;

  constructor(
    port: number,
    private readonly idle: RawUpstream[],
  ) {
    this.socket = net.connect({ port, host: HOST, noDelay: true });
    this.parser = newParser(HTTPParser.RESPONSE, this, ((_maj: number, _min: number, headers: string[], _m: number, _u: string, status: number, text: string) => {
      let head = `HTTP/1.1 ${status} ${text}\r\n`;
      for (let i = 0; i < headers.length; i += 2) {
        const lower = headers[i]!.toLowerCase();
        if (lower !== 'connection' && lower !== 'keep-alive') head += `${headers[i]}: ${headers[i + 1]}\r\n`;
      }
      this.head = `${head}via: 1.1 floor\r\n\r\n`;
      return 0;
    }) as never);
    this.parser[HTTPParser.kOnBody] = (body: Buffer) => answer(this.client!, this.head, Buffer.from(body));
    this.parser[HTTPParser.kOnMessageComplete] = () => {
      this.client = null;
      this.idle.push(this);
    };
    this.socket.on('data', (d: Buffer) => {
      if (typeof this.parser.execute(d) !== 'number') this.socket.destroy();
    });
    this.socket.on('error', () => undefined);
  }

  send(client: Socket, method: string, url: string, headers: string[]): void {
    this.client = client;
    let head = `${method} ${url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.socket.write(`${head}\r\n`, 'latin1');
  }
}

function serve(port: number, upstreams: number[], raw: boolean): void {
  const pools = upstreams.map((p) => new Pool(`http://${HOST}:${p}`, { connections: 128 }));
  const idle = upstreams.map(() => [] as RawUpstream[]);
  let next = 0;
  net
    .createServer({ noDelay: true }, (socket) => {
      let headDone = false;
      const onHead = ((_maj: number, _min: number, headers: string[], method: number, url: string) => {
        headDone = true;
        const i = next++ % upstreams.length;
        const name = methods[method] ?? 'GET';
        if (raw) (idle[i]!.pop() ?? new RawUpstream(upstreams[i]!, idle[i]!)).send(socket, name, url, forwarded(headers));
        else pools[i]!.dispatch({ path: url, method: name as Dispatcher.HttpMethod, headers: forwarded(headers), body: null }, new UndiciExchange(socket));
        return STOP_AFTER_HEAD;
      }) as never;
      const parser = newParser(HTTPParser.REQUEST, socket, onHead);
      socket.on('data', (d: Buffer) => {
        // wrk waits for each answer, so a chunk holds at most one head (no pipelining here).
        if (typeof parser.execute(d) !== 'number') return void socket.destroy();
        if (headDone) {
          // As the router does: stopping after a head leaves llhttp's upgrade flag set.
          headDone = false;
          parser.initialize(HTTPParser.REQUEST, socket, 0, 0);
        }
      });
      socket.on('error', () => undefined);
    })
    .listen(port, HOST, () => process.send?.('listening'));
}

const port = Number(process.env['FLOOR_PORT']);
const upstreams = (process.env['FLOOR_UPSTREAMS'] ?? '').split(',').map(Number);
const workers = Number(process.env['FLOOR_WORKERS'] ?? 2);
const raw = process.env['FLOOR_CLIENT'] === 'raw';
if (!Number.isInteger(port) || upstreams.some((p) => !Number.isInteger(p) || p <= 0)) {
  process.stderr.write('llhttp-floor: set FLOOR_PORT and FLOOR_UPSTREAMS\n');
  process.exit(78);
}
if (cluster.isPrimary && workers > 1) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  serve(port, upstreams, raw);
}

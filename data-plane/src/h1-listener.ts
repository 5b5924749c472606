/**
 * The router's own HTTP/1.1 request path, for the plain listener (a net.Server of its own,
 * plainListener) and for the TLS listener's HTTP/1.1 connections after their handshake
 * (adopt): connections parsed by Node's HTTP parser (llhttp, the one node:http uses, strict) and whose requests go to the
 * proxy as H1Client objects (proxy/h1-client.ts), without node:http's IncomingMessage,
 * ServerResponse and stream machinery around every request. Measured on this machine, that
 * machinery is most of what a Node proxy costs beyond its syscalls (docs/BENCHMARKS.md).
 *
 * It serves the common case only — HTTP/1.1 requests without a body, Upgrade or Expect — and
 * hands anything else to node:http with the connection: the request that does not fit, a
 * parse error (node:http meets the same error and answers it as it always did: 400, 431,
 * through 'clientError'), an HTTP/1.0 client. The handed-over connection is node:http's from
 * then on (plain: `emit('connection')` on an http.Server that never listens; TLS: the
 * https.Server's own connection listener; then the bytes of
 * that request, re-parsed from its first byte), with all its hardening: WebSocket upgrades,
 * `100-continue`, streamed uploads, smuggling checks, timeouts.
 *
 * One request at a time per connection: the parser stops after each head (the callback's
 * "upgrade" return value), so bytes a pipelining client sends meanwhile wait, up to
 * PENDING_MAX, and are parsed once the response is done. Timeouts, checked by a sweep: the
 * head must arrive within ROUTER_HEADERS_TIMEOUT (408, as node:http), an idle connection
 * between requests is closed after ROUTER_KEEPALIVE_TIMEOUT, and one whose answers wait for a
 * client that reads nothing after ROUTER_IDLE_TIMEOUT (node:http keeps those forever).
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import net, { type Socket } from 'node:net';
import type { ProxyContext } from './proxy/context.js';
import { onClientError } from './proxy/client-errors.js';
import { H1Client, type H1Owner } from './proxy/h1-client.js';
import { CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE, headerKind } from './proxy/header-kinds.js';
import { proxyRequest } from './proxy/http-proxy.js';

/** Node's binding to llhttp, as node:http uses it (`_http_common` is public, though not in @types/node). */
interface HttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  /** Bytes parsed, or the parse error (its `code` an llhttp error name). */
  execute(data: Buffer): number | Error;
  free(): void;
  [callback: number]: unknown;
  [kConnection]?: H1Connection;
}
interface ParserModule {
  HTTPParser: {
    new (): HttpParser;
    REQUEST: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
  };
  methods: string[];
}
const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as ParserModule;

const kConnection = Symbol('h1Connection');
/** llhttp's on_headers_complete return value that stops parsing right after the head (as for an Upgrade). */
const STOP_AFTER_HEAD = 2;
/** A pipelining client's bytes held while a response is in progress; beyond it the socket is paused. */
const PENDING_MAX = 64 * 1024;

/** Why a connection went to node:http (router_http1_handovers_total's label). */
type Handover = 'body' | 'upgrade' | 'expect' | 'version' | 'malformed';

/** Waiting for a request (the first one: the headers timeout runs; later ones: the keep-alive timeout). */
const IDLE = 0;
/** Part of a head received. */
const HEAD = 1;
/** A request in flight; what arrives meanwhile is held in `pending`. */
const BUSY = 2;
/** Closed, or handed to node:http. */
const GONE = 3;

interface TaggedSocket extends Socket {
  [kConnection]?: H1Connection;
}

function onParserHeaders(this: HttpParser, headers: string[], url: string): void {
  const c = this[kConnection];
  if (c === undefined) return;
  // Every line is kept (the 16 KiB head limit bounds them): a Content-Length past a cap would
  // go unseen, the head served here and its body parsed as the next request.
  for (let i = 0; i < headers.length; i++) c.headers.push(headers[i]!);
  c.url += url;
}

function onParserHeadersComplete(
  this: HttpParser,
  major: number,
  minor: number,
  headers: string[] | undefined,
  method: number,
  url: string | undefined,
  _status: number,
  _statusText: string,
  upgrade: boolean,
  keepAlive: boolean,
): number {
  const c = this[kConnection];
  if (c === undefined) return STOP_AFTER_HEAD;
  // More than 32 header lines arrive in earlier kOnHeaders calls.
  if (headers === undefined) {
    headers = c.headers;
    c.headers = [];
  }
  if (url === undefined) {
    url = c.url;
    c.url = '';
  }
  const name = methods[method] ?? 'GET';
  let misfit: Handover | null = major !== 1 || minor !== 1 ? 'version' : upgrade || name === 'CONNECT' ? 'upgrade' : null;
  for (let i = 0; misfit === null && i < headers.length; i += 2) {
    switch (headerKind(headers[i]!)) {
      case TRANSFER_ENCODING:
        misfit = 'body';
        break;
      case CONTENT_LENGTH:
        if (headers[i + 1] !== '0') misfit = 'body';
        break;
      case EXPECT:
        misfit = 'expect';
        break;
      case UPGRADE:
        misfit = 'upgrade';
        break;
    }
  }
  // The label names the rarer feature: an Expect or Upgrade comes with its body or its length.
  if (misfit === 'body') {
    for (let i = 0; i < headers.length; i += 2) {
      const kind = headerKind(headers[i]!);
      if (kind === EXPECT) misfit = 'expect';
      else if (kind === UPGRADE) misfit = 'upgrade';
    }
  }
  if (misfit === null) c.ready = new H1Client(c, name, url, headers, keepAlive);
  else c.misfit = misfit;
  return STOP_AFTER_HEAD;
}

function onParserNothing(): void {}

function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[kConnection]?.received(chunk);
}

function onSocketEnd(this: TaggedSocket): void {
  this[kConnection]?.clientEnded();
}

function onSocketClose(this: TaggedSocket): void {
  this[kConnection]?.closed();
}

function onSocketDrain(this: TaggedSocket): void {
  const c = this[kConnection];
  if (c === undefined) return;
  if (c.awaitingDrain) return c.drained();
  const client = c.client;
  client?.drainListener?.call(client);
}

/** 'close' follows. */
function onSocketError(): void {}

function feedPending(c: H1Connection): void {
  c.feedPending();
}

class H1Connection implements H1Owner {
  state = IDLE;
  private first = true;
  /** When the current state began (performance.now()). */
  stamp: number;
  /** The chunks of the head in progress, from its first byte: what node:http re-parses on a handover. */
  private since: Buffer[] = [];
  private pending: Buffer | null = null;
  /** A response done while the socket's buffer is full: nothing more is read or served until it drains. */
  awaitingDrain = false;
  private ended = false;
  private paused = false;
  headers: string[] = [];
  url = '';
  ready: H1Client | null = null;
  /** The head just parsed is not for this path. */
  misfit: Handover | null = null;
  client: H1Client | null = null;
  private readonly parser: HttpParser;

  constructor(
    private readonly listener: H1Listener,
    readonly socket: TaggedSocket,
    now: number,
  ) {
    this.stamp = now;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, socket, http.maxHeaderSize, 0);
    parser[HTTPParser.kOnHeaders] = onParserHeaders;
    parser[HTTPParser.kOnHeadersComplete] = onParserHeadersComplete;
    parser[HTTPParser.kOnBody] = onParserNothing;
    parser[HTTPParser.kOnMessageComplete] = onParserNothing;
    parser[HTTPParser.kOnExecute] = onParserNothing;
    parser[kConnection] = this;
    this.parser = parser;
    socket[kConnection] = this;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
    socket.on('error', onSocketError);
  }

  get keepAliveLines(): string {
    return this.listener.keepAliveLines;
  }

  received(chunk: Buffer): void {
    if (this.state === BUSY) {
      const pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
      this.pending = pending;
      if (pending.length > PENDING_MAX && !this.paused) {
        this.paused = true;
        this.socket.pause();
      }
      return;
    }
    if (this.state === GONE) return;
    if (this.state === IDLE) {
      this.state = HEAD;
      this.stamp = performance.now();
    }
    this.since.push(chunk);
    const parsed = this.parser.execute(chunk);
    if (typeof parsed !== 'number') return this.handOver('malformed');
    if (this.misfit !== null) return this.handOver(this.misfit);
    const client = this.ready;
    if (client === null) return;
    this.ready = null;
    this.since = [];
    // Stopping after the head leaves llhttp's upgrade flag set, and with it Node's binding
    // ignores the next message's parse errors: every request starts on a fresh parser state.
    this.parser.initialize(HTTPParser.REQUEST, this.socket, http.maxHeaderSize, 0);
    if (parsed < chunk.length) this.pending = chunk.subarray(parsed);
    this.state = BUSY;
    this.client = client;
    proxyRequest(this.listener.ctx, client, client, false);
  }

  responseDone(client: H1Client, close: boolean): void {
    if (this.client !== client) return;
    this.client = null;
    if (close || this.ended) {
      this.state = GONE;
      this.socket.destroySoon();
      return;
    }
    this.first = false;
    this.stamp = performance.now();
    if (this.socket.writableNeedDrain) {
      // A client pipelining without reading: as node:http does, stop reading until it does,
      // or every answer would pile up in this process.
      this.awaitingDrain = true;
      if (!this.paused) {
        this.paused = true;
        this.socket.pause();
      }
      return;
    }
    if (this.pending !== null) {
      // Stays BUSY until then: the next request starts after this one's access line, not inside its completion.
      process.nextTick(feedPending, this);
      return;
    }
    this.state = IDLE;
  }

  drained(): void {
    this.awaitingDrain = false;
    // Idle from now: the keep-alive timeout counts from the drain, not from the response.
    this.stamp = performance.now();
    if (this.state !== BUSY || this.client !== null) return;
    if (this.pending !== null) return this.feedPending();
    this.state = IDLE;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  feedPending(): void {
    if (this.state !== BUSY || this.client !== null) return;
    const pending = this.pending!;
    this.pending = null;
    this.state = IDLE;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    this.received(pending);
  }

  /** The rest of the connection is node:http's, from the first byte of the head in progress. */
  private handOver(reason: Handover): void {
    this.listener.ctx.metrics.http1Handovers.labels(reason).inc();
    const bytes = this.since.length === 1 ? this.since[0]! : Buffer.concat(this.since);
    this.detach();
    const socket = this.socket;
    this.listener.handOff(socket);
    socket.emit('data', bytes);
  }

  private detach(): void {
    this.state = GONE;
    this.since = [];
    const socket = this.socket;
    socket.removeListener('data', onSocketData);
    socket.removeListener('end', onSocketEnd);
    socket.removeListener('close', onSocketClose);
    socket.removeListener('drain', onSocketDrain);
    socket.removeListener('error', onSocketError);
    socket[kConnection] = undefined;
    this.release();
  }

  private release(): void {
    this.listener.connections.delete(this);
    this.parser[kConnection] = undefined;
    this.parser.free();
  }

  clientEnded(): void {
    this.ended = true;
    if (this.state === BUSY) return;
    if (this.state === HEAD) return this.fail('HPE_INVALID_EOF_STATE');
    this.state = GONE;
    this.socket.end();
  }

  closed(): void {
    if (this.state !== GONE) this.state = GONE;
    this.release();
    const client = this.client;
    this.client = null;
    client?.connectionClosed();
  }

  /** Answered as node:http's 'clientError' would be (408 for the headers timeout, 400 otherwise), then closed. */
  fail(code: string): void {
    this.state = GONE;
    onClientError(this.listener.ctx, Object.assign(new Error(code), { code }), this.socket);
  }

  sweep(now: number): void {
    if (this.state === HEAD || (this.state === IDLE && this.first)) {
      if (now - this.stamp >= this.listener.headersTimeoutMs) this.fail('ERR_HTTP_REQUEST_TIMEOUT');
    } else if (this.state === IDLE && now - this.stamp >= this.listener.keepAliveTimeoutMs) {
      this.state = GONE;
      this.socket.destroy();
    } else if (this.awaitingDrain && now - this.stamp >= this.listener.idleTimeoutMs) {
      // Answers waiting for a client that reads nothing: no bytes either way, as for an exchange.
      this.state = GONE;
      this.socket.destroy();
    }
  }

  isIdle(): boolean {
    return this.state === IDLE;
  }
}

export class H1Listener {
  readonly connections = new Set<H1Connection>();
  readonly keepAliveLines: string;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly idleTimeoutMs: number;
  private readonly timer: NodeJS.Timeout;

  /** `handOff`: gives node:http a connection this path does not serve (the bytes of its request follow as a 'data' event). */
  constructor(
    readonly ctx: ProxyContext,
    readonly handOff: (socket: Socket) => void,
  ) {
    const { config } = ctx;
    this.headersTimeoutMs = config.headersTimeoutMs;
    this.keepAliveTimeoutMs = config.keepAliveTimeoutMs;
    this.idleTimeoutMs = config.idleTimeoutMs;
    this.keepAliveLines = `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(config.keepAliveTimeoutMs / 1000)}\r\n`;
    const period = Math.min(1000, Math.max(50, Math.floor(Math.min(config.headersTimeoutMs, config.keepAliveTimeoutMs, config.idleTimeoutMs) / 4)));
    this.timer = setInterval(() => this.sweep(), period);
    this.timer.unref();
  }

  /** A new connection (TCP, or TLS after its handshake chose HTTP/1.1) starts here. */
  adopt(socket: Socket): void {
    this.connections.add(new H1Connection(this, socket, performance.now()));
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of this.connections) c.sweep(now);
  }

  /** Connections waiting for a request (node:http's closeIdleConnections, for this path). */
  closeIdle(): void {
    for (const c of this.connections) if (c.isIdle()) c.socket.destroy();
  }

  closeAll(): void {
    for (const c of this.connections) c.socket.destroy();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * The plain listener: a net.Server whose connections start on this path, `http` (node:http,
 * never listening) taking the ones handed over.
 */
export function plainListener(ctx: ProxyContext, http: http.Server): { server: net.Server; h1: H1Listener } {
  // node:http starts tracking its connections (headersTimeout, closeIdleConnections) when it listens; this one never does.
  http.emit('listening');
  const h1 = new H1Listener(ctx, (socket) => http.emit('connection', socket));
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => h1.adopt(socket));
  return { server, h1 };
}

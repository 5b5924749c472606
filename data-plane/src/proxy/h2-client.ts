/**
 * One HTTP/2 stream as the proxy path sees a client (client.ts): the request's head and body,
 * and the response. node:http2's core API (the 'stream' event, `stream.respond`), not its
 * compat API: the compat layer builds an Http2ServerRequest (a Readable copying the body) and
 * an Http2ServerResponse for every stream and goes through setHeader per header; this is one
 * object per stream, plus a body view only for requests that have a body.
 *
 * What HTTP/2 changes, all here:
 *  - the response head is one header object (`stream.respond`), not a flat list: repeated
 *    fields are joined with ', ' (RFC 9110 §5.3) except Set-Cookie, and connection-specific
 *    fields are dropped — sending one is a protocol error that kills the stream;
 *  - no status text; `100 Continue` is an interim HEADERS frame;
 *  - cutting a response is RST_STREAM(INTERNAL_ERROR) on this stream only, never the
 *    connection, and never after an END_STREAM; a complete response while the client is still sending asks it to stop
 *    with RST_STREAM(NO_ERROR) (RFC 9113 §8.1);
 *  - the body handed to undici is a Readable fed from the stream, not the stream itself:
 *    undici destroys a body stream without autoDestroy when it ends, and this one's writable
 *    side has the response still to carry.
 */
import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { ClientRequest, ClientResponse } from './client.js';
import { AUTHORITY, CONNECTION, HOP, PSEUDO, TRANSFER_ENCODING, UPGRADE, headerKind } from './header-kinds.js';

const { NGHTTP2_NO_ERROR } = http2.constants;

const kClient = Symbol('h2Client');

interface TaggedStream extends ServerHttp2Stream {
  [kClient]?: H2Client;
}

type Listener = (this: H2Client) => void;

/** Handed to undici when the client resets a stream mid-upload: the upstream request is aborted. */
const RESET = Object.assign(new Error('client reset the stream'), { code: 'ERR_H2_CLIENT_RESET' });
/**
 * Destroying the stream with an error sends RST_STREAM(INTERNAL_ERROR) alone. `close(code)`
 * would end the writable side first, and its END_STREAM would let a client take a
 * chunked body cut short for a whole one.
 */
const CUT = Object.assign(new Error('response cut by the router'), { code: 'ERR_H2_RESPONSE_CUT' });
/** Frozen: Node copies it (processHeaders) and never writes to it. */
const CONTINUE: OutgoingHttpHeaders = Object.freeze({ ':status': 100 });
/** A stream emits 'error' when the client resets it with an error code; without a listener that would end the process. */
function ignoreError(): void {}

function onStreamClose(this: TaggedStream): void {
  this[kClient]?.streamClosed();
}

function onStreamDrain(this: TaggedStream): void {
  this[kClient]?.streamDrained();
}

function onStreamData(this: TaggedStream, chunk: Buffer): void {
  const body = this[kClient]?.bodyView;
  // false: undici has not read what is buffered; paused, the stream stops granting the client flow-control window.
  if (body != null && !body.push(chunk)) this.pause();
}

function onStreamEnd(this: TaggedStream): void {
  const body = this[kClient]?.bodyView;
  if (body == null) return;
  // A reset ends the readable side too ('end' after destroy): passed on as an end, undici would
  // close the chunked body and the container would take a truncated upload for a whole one.
  if (this.aborted || (this.closed && this.rstCode !== NGHTTP2_NO_ERROR)) body.destroy(RESET);
  else body.push(null);
}

/** The request body as undici reads it, with the stream's backpressure. */
class H2Body extends Readable {
  constructor(private readonly stream: ServerHttp2Stream) {
    super({ highWaterMark: 64 * 1024 });
    // Destroyed with RESET after undici let go of it (response already complete): nobody else listens.
    this.on('error', ignoreError);
  }

  override _read(): void {
    this.stream.resume();
  }
}

export class H2Client implements ClientRequest, ClientResponse {
  readonly httpVersionMajor = 2;
  readonly method: string;
  readonly url: string;
  bodyView: H2Body | null = null;
  private sentHead = false;
  private closeListener: Listener | null = null;
  private drainListener: Listener | null = null;

  constructor(
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    readonly rawHeaders: string[],
    readonly socket: Socket,
    private readonly log: Logger,
  ) {
    this.method = headers[':method'] ?? 'GET';
    this.url = headers[':path'] ?? '/';
    (stream as TaggedStream)[kClient] = this;
    stream.on('error', ignoreError);
    stream.on('close', onStreamClose);
  }

  /** No body (END_STREAM on the request's HEADERS), or all of it received and read. */
  get complete(): boolean {
    return this.stream.endAfterHeaders || this.stream.readableEnded;
  }

  /** The client reset the stream or the session is gone: nobody to answer. */
  get gone(): boolean {
    return this.stream.closed || this.stream.destroyed;
  }

  /** The client sent `Expect: 100-continue`. */
  get expectsContinue(): boolean {
    const expect = this.headers.expect;
    return expect !== undefined && expect.toLowerCase() === '100-continue';
  }

  /** The body for undici; the same object on every attempt, so a retry before anything was read resends it whole. */
  body(): Readable {
    if (this.bodyView === null) {
      this.bodyView = new H2Body(this.stream);
      this.stream.on('data', onStreamData);
      this.stream.on('end', onStreamEnd);
    }
    return this.bodyView;
  }

  get headersSent(): boolean {
    return this.sentHead;
  }

  /** The status text, if given, has no place in HTTP/2 and is dropped. */
  writeHead(statusCode: number, textOrHeaders: string | string[], maybeHeaders?: string[]): this {
    const list = typeof textOrHeaders === 'string' ? (maybeHeaders ?? []) : textOrHeaders;
    this.sentHead = true;
    if (this.gone) return this;
    try {
      this.stream.respond(h2ResponseHeaders(statusCode, list));
    } catch (err) {
      // The conversion drops what HTTP/2 forbids, so this is not expected; the request fails visibly.
      this.log.error({ err, status: statusCode }, 'HTTP/2 response head refused');
      this.destroy();
    }
    return this;
  }

  write(chunk: Buffer): boolean {
    // HEAD, 204 and 304 answers end the stream at respond(); anything written after is dropped.
    if (this.stream.writableEnded) return true;
    return this.stream.write(chunk);
  }

  end(chunk?: Buffer): this {
    const stream = this.stream;
    if (!stream.writableEnded) {
      if (chunk === undefined) stream.end();
      else stream.end(chunk);
    }
    // Answered while the client is still sending (an error page, an early answer of the app):
    // RST_STREAM(NO_ERROR) once the response is flushed tells it to stop (RFC 9113 §8.1).
    if (this.bodyView !== null && !stream.readableEnded && !stream.closed) stream.close(NGHTTP2_NO_ERROR);
    return this;
  }

  destroy(): this {
    if (!this.gone) this.stream.destroy(CUT);
    return this;
  }

  writeContinue(): void {
    if (!this.sentHead && !this.gone) this.stream.additionalHeaders(CONTINUE);
  }

  on(event: 'close' | 'drain', listener: Listener): this {
    if (event === 'close') {
      this.closeListener = listener;
    } else {
      this.drainListener = listener;
      this.stream.on('drain', onStreamDrain);
    }
    return this;
  }

  /** @internal The stream closed: finished, reset by either side, or its session went away. */
  streamClosed(): void {
    this.closeListener?.call(this);
    // Mid-upload: undici aborts the upstream request when its body fails.
    const body = this.bodyView;
    if (body !== null && !body.readableEnded && !body.destroyed) body.destroy(RESET);
  }

  /** @internal */
  streamDrained(): void {
    this.drainListener?.call(this);
  }
}

/**
 * The response head as node:http2 takes it, from the proxy's flat [name, value, ...] list.
 * Names are lower-cased (HTTP/2 requires it, and node:http2 refuses a single-value field
 * given twice under two casings); repeated fields are joined, Set-Cookie stays a list.
 */
export function h2ResponseHeaders(status: number, list: readonly string[]): OutgoingHttpHeaders {
  // No prototype: a container's header named `constructor` or `__proto__` is only a header.
  const out = Object.create(null) as Record<string, string | string[] | number>;
  out[':status'] = status;
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    const kind = headerKind(name);
    // responseHeaders() already dropped these; this keeps any other caller from killing the stream.
    if (kind === CONNECTION || kind === HOP || kind === TRANSFER_ENCODING || kind === UPGRADE || kind === AUTHORITY || kind === PSEUDO) continue;
    const key = name.toLowerCase();
    const value = list[i + 1]!;
    const prev = out[key];
    if (prev === undefined) out[key] = key === 'set-cookie' ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = `${String(prev)}, ${value}`;
  }
  return out;
}

/**
 * One HTTP/1.1 request on the router's own HTTP/1.1 path (h1-connection.ts) as the proxy
 * path sees a client (client.ts), the way H2Client is one for an HTTP/2 stream: the request
 * head, and a response written straight to the socket.
 *
 * Only requests without a body come here (the connection hands the others to node:http), so
 * there is no body to read and no `100 Continue` to send. What node:http's ServerResponse
 * would have done for them is done here, on one string per response:
 *  - framing: the container's Content-Length passes through; without one the body is
 *    re-chunked; HEAD, 204 and 304 answers carry no body whatever is written;
 *  - `Date` when the head has none, `Connection: keep-alive` with `Keep-Alive: timeout=<s>`
 *    (clients such as undici stop reusing a connection before that), `Connection: close`
 *    when the client asked for it;
 *  - header values checked as node:http checks them (no CR, LF or other control byte): a bad
 *    one throws before anything is written, as writeHead does;
 *  - the head goes out with the first body chunk, in one write.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ClientRequest, ClientResponse } from './client.js';
import { CONNECTION, CONTENT_LENGTH, headerKind } from './header-kinds.js';

/** What the client needs from its connection. */
export interface H1Owner {
  readonly socket: Socket;
  /** `Connection: keep-alive\r\nKeep-Alive: timeout=<s>\r\n`, built once per listener. */
  readonly keepAliveLines: string;
  /** The response is complete: the next request may be read, or the connection closed. */
  responseDone(client: H1Client, close: boolean): void;
}

type Listener = (this: H1Client) => void;

/** node:http's check on header values (`checkInvalidHeaderChar`). */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const CHUNKED_END = '0\r\n\r\n';
/** Up to this size a first body chunk is copied behind the head; larger ones go out corked. Head values are latin1 (checked), so the head's length is its byte length. */
const MERGE_MAX = 16 * 1024;

let dateMs = 0;
let dateLine = '';

/** `date: …\r\n` for this second, built once a second. */
function currentDateLine(): string {
  const now = Date.now();
  if (now - dateMs >= 1000 || now < dateMs) {
    dateMs = now - (now % 1000);
    dateLine = `date: ${new Date(dateMs).toUTCString()}\r\n`;
  }
  return dateLine;
}

function invalidHeader(name: string): Error {
  return Object.assign(new TypeError(`Invalid character in header content ["${name}"]`), { code: 'ERR_INVALID_CHAR' });
}

export class H1Client implements ClientRequest, ClientResponse {
  readonly httpVersionMajor = 1;
  /** Always: a request with a body never takes this path. */
  readonly complete = true;
  /** The head, once written, waiting for the first body chunk (or the end). */
  private head: string | null = null;
  private sentHead = false;
  private noBody = false;
  private chunked = false;
  private closeAfter = false;
  private ended = false;
  private closeListener: Listener | null = null;
  drainListener: Listener | null = null;

  constructor(
    private readonly owner: H1Owner,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    /** The client's own `Connection: close` (or no keep-alive): the connection ends after this response. */
    private readonly keepAlive: boolean,
  ) {}

  get socket(): Socket {
    return this.owner.socket;
  }

  /** Only `accept` is asked for (which error page), and only when the router answers itself. */
  get headers(): { accept?: string | undefined } {
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 6 && raw[i]!.toLowerCase() === 'accept') return { accept: raw[i + 1] };
    return {};
  }

  get headersSent(): boolean {
    return this.sentHead;
  }

  writeHead(statusCode: number, textOrHeaders: string | string[], maybeHeaders?: string[]): this {
    const text = typeof textOrHeaders === 'string' ? textOrHeaders : (STATUS_CODES[statusCode] ?? 'unknown');
    const list = typeof textOrHeaders === 'string' ? (maybeHeaders ?? []) : textOrHeaders;
    if (INVALID_VALUE.test(text)) throw invalidHeader('status message');
    let head = `HTTP/1.1 ${statusCode} ${text}\r\n`;
    let hasLength = false;
    let hasDate = false;
    let close = !this.keepAlive;
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!;
      const value = list[i + 1]!;
      if (INVALID_VALUE.test(value)) throw invalidHeader(name);
      const kind = headerKind(name);
      if (kind === CONTENT_LENGTH) hasLength = true;
      else if (kind === CONNECTION) {
        // The only Connection the proxy path writes is `close` (draining, unread body).
        close = true;
        continue;
      } else if (name.length === 4 && (name.charCodeAt(0) | 0x20) === 100 && name.toLowerCase() === 'date') hasDate = true;
      head += `${name}: ${value}\r\n`;
    }
    if (!hasDate) head += currentDateLine();
    this.noBody = this.method === 'HEAD' || statusCode === 204 || statusCode === 304 || statusCode < 200;
    if (!this.noBody && !hasLength) {
      this.chunked = true;
      head += 'transfer-encoding: chunked\r\n';
    }
    this.closeAfter = close;
    head += close ? 'connection: close\r\n\r\n' : `${this.owner.keepAliveLines}\r\n`;
    this.head = head;
    this.sentHead = true;
    return this;
  }

  write(chunk: Buffer): boolean {
    const socket = this.owner.socket;
    if (this.noBody || this.ended || chunk.length === 0) return !socket.writableNeedDrain;
    const head = this.head;
    if (head === null && !this.chunked) return socket.write(chunk);
    if (head !== null && !this.chunked && chunk.length <= MERGE_MAX) {
      // The usual small answer: head and body copied into one buffer, one plain write
      // (a corked pair goes through the stream's buffering and a writev).
      this.head = null;
      const out = Buffer.allocUnsafe(head.length + chunk.length);
      out.write(head, 0, 'latin1');
      chunk.copy(out, head.length);
      return socket.write(out);
    }
    socket.cork();
    if (head !== null) {
      this.head = null;
      socket.write(head, 'latin1');
    }
    if (this.chunked) {
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      socket.write('\r\n', 'latin1');
    } else {
      socket.write(chunk);
    }
    socket.uncork();
    return !socket.writableNeedDrain;
  }

  end(chunk?: Buffer): this {
    if (this.ended) return this;
    if (chunk !== undefined) this.write(chunk);
    this.ended = true;
    const socket = this.owner.socket;
    const head = this.head;
    this.head = null;
    if (this.chunked && !this.noBody) {
      socket.write(head === null ? CHUNKED_END : head + CHUNKED_END, 'latin1');
    } else if (head !== null) {
      socket.write(head, 'latin1');
    }
    this.owner.responseDone(this, this.closeAfter);
    return this;
  }

  /** The 'close' listener still runs (from the socket's close), as node:http's response emits 'close'. */
  destroy(): this {
    this.owner.socket.destroy();
    return this;
  }

  writeContinue(): void {
    if (!this.sentHead && !this.ended) this.owner.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  on(event: 'close' | 'drain', listener: Listener): this {
    if (event === 'close') this.closeListener = listener;
    else this.drainListener = listener;
    return this;
  }

  /** @internal The connection closed while this response was the current one. */
  connectionClosed(): void {
    if (this.ended) return;
    this.ended = true;
    this.closeListener?.call(this);
  }
}

/**
 * Header rewriting both ways. Requests: hop-by-hop headers dropped, Host kept as sent, the
 * router's X-Forwarded-*, X-Request-Id, X-Request-Start and Via added. Responses: hop-by-hop
 * headers dropped, Via and X-Request-Id added. Both work on flat [name, value, ...] lists,
 * which keep the client's casing and repeated headers (Set-Cookie) and which undici and
 * `res.writeHead` take as they are.
 *
 * HTTP/2 requests (containers always get HTTP/1.1): `:authority` becomes Host, the other
 * pseudo-headers are dropped, the cookie crumbs are joined into one Cookie (RFC 9113 §8.2.3)
 * and Via names protocol 2.
 */
import type { Socket } from 'node:net';
import type { ClientRequest } from './client.js';
import { requestIdFor } from './request-id.js';
import {
  AUTHORITY,
  CONNECTION,
  CONTENT_LENGTH,
  COOKIE,
  HOP,
  HOST,
  OTHER,
  PSEUDO,
  TRANSFER_ENCODING,
  UPGRADE,
  VIA,
  X_FORWARDED_FOR,
  X_REQUEST_ID,
  connectionTokens,
  dropListed,
  headerKind,
} from './header-kinds.js';

/** What the listener tells upstreams about itself; one object per server, built once. */
export interface Forwarding {
  /** `http` on this listener; the TLS listener passes `https`. */
  proto: string;
  /** The listener's port as a string; '' until known (then the socket's local port is used). */
  port: string;
  /** `1.1 <router name>`: requests received over HTTP/1.1, and every response (containers answer in HTTP/1.1). */
  via: string;
  /** `2 <router name>`: requests received over HTTP/2. */
  via2: string;
}

/** What one pass over a request's raw headers found, and the headers to send upstream. */
export class RequestHead {
  /** The first Host header as sent; `hostCount > 1` is ambiguous and answered 400. */
  host: string | undefined = undefined;
  hostCount = 0;
  /** Whether a body follows (Content-Length other than 0, or Transfer-Encoding). */
  hasBody = false;
  requestId = '';
  clientIp = '';
  cookie: string | undefined = undefined;
  upstream: string[] = [];
}

const IPV4_MAPPED = '::ffff:';

/** The peer address, IPv4-mapped IPv6 shown as plain IPv4. */
export function clientAddress(socket: Socket): string {
  const addr = socket.remoteAddress;
  if (addr === undefined) return 'unknown';
  return addr.startsWith(IPV4_MAPPED) && addr.includes('.') ? addr.slice(IPV4_MAPPED.length) : addr;
}

/**
 * One pass over `req.rawHeaders` (never `req.headers`, which would build a lower-cased copy
 * of every header). `upgrade` keeps Connection/Upgrade for WebSocket handshakes; `startMs`
 * is the X-Request-Start value, `t=<ms since epoch>` as Heroku sends it.
 */
export function scanRequest(req: ClientRequest, upgrade: boolean, fwd: Forwarding, startMs: number, out: RequestHead): void {
  const raw = req.rawHeaders;
  const h2 = req.httpVersionMajor === 2;
  let headers: string[] = [];
  let authority: string | undefined;
  let xff: string | undefined;
  let via: string | undefined;
  let clientId: string | undefined;
  let upgradeTo: string | undefined;
  let tokens: string[] | null = null;
  let sawLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    switch (headerKind(name)) {
      case OTHER:
        headers.push(name, value);
        break;
      case HOST:
        // HTTP/2: a Host naming the same authority as `:authority` is the same Host; another one is ambiguous (RFC 9113 §8.3.1).
        if (authority !== undefined && value.length === authority.length && value.toLowerCase() === authority.toLowerCase()) break;
        if (out.hostCount++ === 0) {
          out.host = value;
          headers.push(name, value);
        }
        break;
      case AUTHORITY:
        // Pseudo-headers come first, so this is seen before any Host header.
        authority = value;
        if (out.hostCount++ === 0) {
          out.host = value;
          headers.push('host', value);
        }
        break;
      case PSEUDO:
        break;
      case CONTENT_LENGTH:
        // llhttp already refused conflicting lengths; undici refuses a repeated one.
        if (!sawLength) {
          sawLength = true;
          if (value !== '0') out.hasBody = true;
          headers.push(name, value);
        }
        break;
      case TRANSFER_ENCODING:
        // undici re-frames the body itself (chunked when the length is unknown).
        out.hasBody = true;
        break;
      case COOKIE:
        out.cookie = out.cookie === undefined ? value : `${out.cookie}; ${value}`;
        // HTTP/2 clients send one field per cookie; an HTTP/1.1 container expects one Cookie line (pushed below).
        if (!h2) headers.push(name, value);
        break;
      case CONNECTION:
        tokens = connectionTokens(value, tokens);
        break;
      case UPGRADE:
        upgradeTo = value;
        break;
      case VIA:
        via = via === undefined ? value : `${via}, ${value}`;
        break;
      case X_FORWARDED_FOR:
        xff = xff === undefined ? value : `${xff}, ${value}`;
        break;
      case X_REQUEST_ID:
        clientId ??= value;
        break;
      default:
        // Hop-by-hop, Expect (answered here: undici cannot forward it), and the headers the router sets itself.
        break;
    }
  }
  if (tokens !== null) headers = dropListed(headers, tokens);
  if (h2) {
    if (out.cookie !== undefined) headers.push('cookie', out.cookie);
    // No Transfer-Encoding in HTTP/2, and Content-Length is optional: a body is whatever follows HEADERS without END_STREAM.
    out.hasBody = !req.complete;
  }
  const ip = clientAddress(req.socket);
  out.clientIp = ip;
  out.requestId = requestIdFor(clientId);
  if (upgrade && upgradeTo !== undefined) headers.push('connection', 'upgrade', 'upgrade', upgradeTo);
  headers.push(
    'x-forwarded-for',
    xff === undefined ? ip : `${xff}, ${ip}`,
    'x-forwarded-proto',
    fwd.proto,
    'x-forwarded-port',
    fwd.port !== '' ? fwd.port : String(req.socket.localPort ?? ''),
    'x-request-id',
    out.requestId,
    'x-request-start',
    `t=${startMs}`,
    'via',
    via === undefined ? (h2 ? fwd.via2 : fwd.via) : `${via}, ${h2 ? fwd.via2 : fwd.via}`,
  );
  out.upstream = headers;
}

/**
 * The headers to answer the client with, from undici's raw response headers. `setCookie`:
 * the sticky-session cookie to add, if any; `close`: ask the client to close (drain).
 */
export function responseHeaders(raw: Buffer[], via: string, requestId: string, setCookie: string | null, close: boolean): string[] {
  const out: string[] = [];
  let upstreamVia: string | undefined;
  let tokens: string[] | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    switch (headerKind(name)) {
      case CONNECTION:
        tokens = connectionTokens(raw[i + 1]!.toString('latin1'), tokens);
        break;
      case VIA: {
        const value = raw[i + 1]!.toString('latin1');
        upstreamVia = upstreamVia === undefined ? value : `${upstreamVia}, ${value}`;
        break;
      }
      case HOP:
      case TRANSFER_ENCODING:
      case UPGRADE:
      case X_REQUEST_ID:
        // Node frames the body for the client; the request id is the router's.
        break;
      default:
        out.push(name, raw[i + 1]!.toString('latin1'));
    }
  }
  const kept = tokens === null ? out : dropListed(out, tokens);
  kept.push('via', upstreamVia === undefined ? via : `${upstreamVia}, ${via}`, 'x-request-id', requestId);
  if (setCookie !== null) kept.push('set-cookie', setCookie);
  if (close) kept.push('connection', 'close');
  return kept;
}

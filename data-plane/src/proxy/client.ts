/**
 * The client side of one proxied request, as the proxy path (http-proxy.ts, http-exchange.ts,
 * error-page.ts) uses it. node:http's IncomingMessage and ServerResponse satisfy these
 * interfaces as they are, so HTTP/1.1 requests go through no wrapper at all; an HTTP/2 stream
 * goes through H2Client (h2-client.ts), one thin adapter object per stream. One proxy path
 * for both protocols: what differs is in the adapter, and in the few places the exchange
 * asks which protocol it serves.
 */
import type { Socket } from 'node:net';

export interface ClientRequest {
  /** 1 for node:http's requests, 2 for H2Client. */
  readonly httpVersionMajor: number;
  readonly method?: string | undefined;
  /** The request target (h2: `:path`). */
  readonly url?: string | undefined;
  /** Flat [name, value, ...] as received (h2: lower-case names, pseudo-headers first). */
  readonly rawHeaders: string[];
  readonly headers: { readonly accept?: string | undefined };
  /** The whole body was received. */
  readonly complete: boolean;
  /** The client's connection (h2: the session's TLS socket). */
  readonly socket: Socket;
}

export interface ClientResponse {
  readonly headersSent: boolean;
  writeHead(statusCode: number, headers: string[]): unknown;
  writeHead(statusCode: number, statusMessage: string, headers: string[]): unknown;
  /** false: buffered past the high-water mark; 'drain' follows. */
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): unknown;
  /** Cuts the response: the client sees it fail, never a short body that looks complete. */
  destroy(): unknown;
  writeContinue(): void;
  /** 'close': the response is over, finished or cut; 'drain': write() may go on. Listeners are called with the response as `this`. */
  on(event: 'close' | 'drain', listener: () => void): unknown;
}

/**
 * What a failed upstream attempt means, from undici's error and how far the attempt got.
 *
 * undici calls the handler's onConnect just before it writes the request on a connected
 * socket, so an error before onConnect means nothing reached the container (refused,
 * connect timeout, unreachable): the container is ejected and the request may go to another
 * one whatever its method, since its body stream was not read yet. After onConnect only a
 * bodyless GET/HEAD/OPTIONS is replayed, and only on a socket error before response headers
 * (typically a keep-alive connection the container closed under us).
 */
import type { RouterErrorCode } from '../errors.js';

/** Containers tried for one request or upgrade before giving up: refused connects are fast, connect timeouts are not. */
export const MAX_ATTEMPTS = 5;

export type Recovery =
  /** Eject the container, try another. */
  | 'retry'
  /** Send the same request again (no ejection). */
  | 'replay'
  /** Answer the client with `code`. */
  | 'answer'
  /** Response headers already went out: cut the client connection. */
  | 'cut';

export interface Verdict {
  readonly recovery: Recovery;
  readonly code: RouterErrorCode;
  /** Counted in router_upstream_errors_total (the container's fault, not the request's). */
  readonly upstreamFault: boolean;
}

const REFUSED: Verdict = { recovery: 'retry', code: 'UPSTREAM_REFUSED', upstreamFault: true };
const INVALID: Verdict = { recovery: 'answer', code: 'BAD_REQUEST', upstreamFault: false };
const CLOSED: Verdict = { recovery: 'answer', code: 'UPSTREAM_ERROR', upstreamFault: false };
const TIMEOUT: Verdict = { recovery: 'answer', code: 'UPSTREAM_TIMEOUT', upstreamFault: true };
const REPLAY: Verdict = { recovery: 'replay', code: 'UPSTREAM_ERROR', upstreamFault: true };
const FAILED: Verdict = { recovery: 'answer', code: 'UPSTREAM_ERROR', upstreamFault: true };
const CUT: Verdict = { recovery: 'cut', code: 'UPSTREAM_ERROR', upstreamFault: true };

/**
 * `started`: onConnect was called; `headersSent`: the client has our status line;
 * `replayable`: bodyless GET/HEAD/OPTIONS.
 */
export function verdictFor(err: Error, started: boolean, headersSent: boolean, replayable: boolean): Verdict {
  const code = (err as NodeJS.ErrnoException).code;
  if (!started) {
    // undici refused the request itself (a header it does not accept).
    if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') return INVALID;
    // The pool is being closed (router shutting down): not the container's fault.
    if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') return CLOSED;
    return REFUSED;
  }
  if (headersSent) return CUT;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return TIMEOUT;
  if (replayable && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE')) return REPLAY;
  return FAILED;
}

export function isReplayableMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

/**
 * The router's own answers. Each carries a stable code that appears in the access log, the
 * metrics and the page the client sees, in the spirit of Heroku's H10–H28: an operator
 * greps one code and knows which side failed.
 */
export interface RouterErrorDef {
  status: number;
  /** Short text for the page. */
  title: string;
  /** What it means, for the docs and the page. */
  detail: string;
}

export const ROUTER_ERRORS = {
  BAD_HOST: { status: 400, title: 'Bad request', detail: 'The Host header is missing or is not a valid hostname.' },
  BAD_REQUEST: { status: 400, title: 'Bad request', detail: 'The request could not be parsed (malformed request line or headers, or ambiguous framing).' },
  REQUEST_TIMEOUT: { status: 408, title: 'Request timeout', detail: 'The client did not send its request headers in time.' },
  HEADERS_TOO_LARGE: { status: 431, title: 'Request header fields too large', detail: 'The request headers exceed the router limit.' },
  FORCE_HTTPS: { status: 308, title: 'HTTPS only', detail: 'The app is served over HTTPS only: the Location header has the same URL over https.' },
  ACME_UNKNOWN_TOKEN: { status: 404, title: 'Unknown ACME challenge', detail: 'No ACME HTTP-01 challenge is pending for this token (never published, expired or deleted).' },
  UNKNOWN_HOST: { status: 404, title: 'No such app', detail: 'No app answers on this hostname.' },
  APP_STOPPED: { status: 503, title: 'Application stopped', detail: 'The app is stopped or has no running container.' },
  BACKLOG_TOO_DEEP: { status: 503, title: 'Too many requests in flight', detail: 'The app has too many requests in flight on this router; retry shortly.' },
  STORE_UNAVAILABLE: { status: 503, title: 'Routing unavailable', detail: 'The routing store is unreachable and this hostname is not cached.' },
  UPSTREAM_REFUSED: { status: 502, title: 'Application unreachable', detail: 'Every container of the app refused or timed out the connection.' },
  UPSTREAM_ERROR: { status: 502, title: 'Bad gateway', detail: 'The container closed the connection or sent an invalid response.' },
  UPSTREAM_TIMEOUT: { status: 504, title: 'Application timeout', detail: 'The container did not send response headers in time.' },
  IDLE_TIMEOUT: { status: 504, title: 'Idle timeout', detail: 'No bytes moved in either direction for too long; the connection was closed.' },
  CLIENT_ABORTED: { status: 499, title: 'Client closed request', detail: 'The client went away before the response was complete (access log only).' },
  DRAINING: { status: 503, title: 'Router restarting', detail: 'This router is shutting down; retry.' },
} as const satisfies Record<string, RouterErrorDef>;

export type RouterErrorCode = keyof typeof ROUTER_ERRORS;

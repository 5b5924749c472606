/**
 * One access-log line per request and per WebSocket session, handed to an injected sink
 * (pino today, the log shipper later). Lines are plain objects of one fixed shape, built in
 * one place so V8 keeps a single hidden class, and hold no formatted strings.
 */

/** The client's protocol: HTTP/1.x, HTTP/2 (TLS listener, ALPN h2), or a WebSocket session (always over HTTP/1.1). */
export type AccessProtocol = 'http/1.1' | 'h2' | 'websocket';

export interface AccessLogLine {
  /** Milliseconds since the epoch when the request reached the router. */
  at: number;
  /** Router error code (errors.ts), or '-' when the app answered. */
  code: string;
  /** App name, or '-' when the request never resolved to one. */
  app: string;
  method: string;
  /** Normalized hostname, or the raw Host header when it was invalid ('-' when absent). */
  host: string;
  /** Path and query as sent. */
  path: string;
  /** Status sent to the client; 499 when the client left before any; for WebSockets, the container's answer (101). */
  status: number;
  /** Request body bytes sent to the container (WebSocket: bytes read from the client). */
  bytes_in: number;
  /** Response body bytes sent to the client (WebSocket: bytes written to the client). */
  bytes_out: number;
  /** From the container choice to the request going out on a connection (queueing + TCP connect); 0 when none. */
  connect_ms: number;
  /** HTTP: from the request going out to the end of the response. WebSocket: the session's duration. */
  service_ms: number;
  request_id: string;
  /** Container id, or '-' when none was chosen. */
  container: string;
  client_ip: string;
  protocol: AccessProtocol;
}

export type AccessLogSink = (line: AccessLogLine) => void;

export function accessLine(
  at: number,
  code: string,
  app: string,
  method: string,
  host: string,
  path: string,
  status: number,
  bytesIn: number,
  bytesOut: number,
  connectMs: number,
  serviceMs: number,
  requestId: string,
  container: string,
  clientIp: string,
  protocol: AccessProtocol,
): AccessLogLine {
  return {
    at,
    code,
    app,
    method,
    host,
    path,
    status,
    bytes_in: bytesIn,
    bytes_out: bytesOut,
    connect_ms: connectMs,
    service_ms: serviceMs,
    request_id: requestId,
    container,
    client_ip: clientIp,
    protocol,
  };
}

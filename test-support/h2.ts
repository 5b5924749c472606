/**
 * A real node:http2 client for the router's HTTPS listener: one session per call to
 * h2Connect, requests as plain promises.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

export interface H2ConnectOptions {
  /** SNI name; none (an IP) gets the router's default certificate, so pass `insecure`. */
  servername?: string;
  /** PEM of the CA to trust. */
  ca?: string;
  insecure?: boolean;
}

export function h2Connect(port: number, opts: H2ConnectOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ...(opts.servername === undefined ? {} : { servername: opts.servername }),
      ...(opts.ca === undefined ? {} : { ca: [opts.ca] }),
      rejectUnauthorized: opts.insecure !== true,
    });
    session.once('connect', () => {
      session.off('error', reject);
      // Later session errors (a GOAWAY the test provokes) surface on the streams.
      session.on('error', () => undefined);
      resolve(session);
    });
    session.once('error', reject);
  });
}

export interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** Collects the response of `stream`; rejects when the stream fails (reset, GOAWAY). */
export function h2Response(stream: ClientHttp2Stream): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      resolve({ status, headers, body, text: body.toString() });
    });
    stream.on('error', reject);
    stream.on('close', () => {
      if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) reject(new Error(`stream reset: code ${stream.rstCode}`));
    });
  });
}

/** One request on `session`; `body` ends the request stream after it. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Reply> {
  const stream = session.request(headers, { endStream: body === undefined });
  const reply = h2Response(stream);
  if (body !== undefined) stream.end(body);
  return reply;
}

export function closeSession(session: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    if (session.destroyed) return resolve();
    session.close(() => resolve());
  });
}

/**
 * What h2load (nghttp2-client 1.52) prints and logs, read into figures: its end-of-run summary
 * (request counts, status classes, min/max/mean/sd of the request, connect and first-byte
 * times, the negotiated TLS) and its `--log-file` (one row per finished request: start time in
 * µs since the epoch, status, µs until the end of the response).
 *
 * How h2load counts (h2load.cc): "succeeded" is a 2xx *or 3xx* status; "failed" is every other
 * finished status plus every "errored" request; "errored" covers connections that failed or
 * were cut and the timed-out requests ("timeout" is a part of "errored"). The log holds only the
 * requests that finished with a status: timed-out and failed connections are absent from it.
 */

export class H2loadOutputError extends Error {
  readonly code = 'H2LOAD_OUTPUT';
}

/** Milliseconds. */
export interface H2loadStats {
  min: number;
  max: number;
  mean: number;
  sd: number;
}

export interface H2loadSummary {
  /** "finished in …": from the start of the benchmark to the last request's end. */
  finishedMs: number;
  requests: { total: number; started: number; done: number; succeeded: number; failed: number; errored: number; timeout: number };
  status: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Per request: from sending it (after the handshake) to the end of its response. */
  request: H2loadStats;
  /** Per connection: from connect() to the end of the TLS handshake (TCP and TLS together). */
  connect: H2loadStats;
  /** Per connection: from connect() to the response's first byte (the handshake included). */
  firstByte: H2loadStats;
  /** As h2load reports the first connection's: protocol, cipher, key exchange, ALPN. */
  tls: { protocol: string | null; cipher: string | null; serverTempKey: string | null; alpn: string | null };
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (m === null) throw new H2loadOutputError(`not an h2load duration: ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

function statsLine(text: string, label: string): H2loadStats {
  // "time for connect:     5.17ms     31.36ms     20.32ms      6.74ms    64.00%"
  const line = text.split('\n').find((l) => l.startsWith(`${label}:`));
  if (line === undefined) throw new H2loadOutputError(`no "${label}" line in h2load's summary`);
  const [min, max, mean, sd] = line.slice(label.length + 1).trim().split(/\s+/);
  if (sd === undefined) throw new H2loadOutputError(`short "${label}" line: ${JSON.stringify(line)}`);
  return { min: durationMs(min!), max: durationMs(max!), mean: durationMs(mean!), sd: durationMs(sd) };
}

function field(text: string, label: string): string | null {
  const line = text.split('\n').find((l) => l.startsWith(`${label}: `));
  return line === undefined ? null : line.slice(label.length + 2).trim();
}

export function parseH2loadSummary(text: string): H2loadSummary {
  const finished = /^finished in ([\d.]+(?:us|ms|s)),/m.exec(text);
  const req = /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout$/m.exec(text);
  const status = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx$/m.exec(text);
  if (finished === null || req === null || status === null) {
    throw new H2loadOutputError(`no summary in h2load's output (${finished === null ? '"finished in"' : req === null ? '"requests:"' : '"status codes:"'} line missing):\n${text.slice(-2000)}`);
  }
  const n = (m: RegExpExecArray, i: number): number => Number(m[i]);
  return {
    finishedMs: durationMs(finished[1]!),
    requests: { total: n(req, 1), started: n(req, 2), done: n(req, 3), succeeded: n(req, 4), failed: n(req, 5), errored: n(req, 6), timeout: n(req, 7) },
    status: { '2xx': n(status, 1), '3xx': n(status, 2), '4xx': n(status, 3), '5xx': n(status, 4) },
    request: statsLine(text, 'time for request'),
    connect: statsLine(text, 'time for connect'),
    firstByte: statsLine(text, 'time to 1st byte'),
    tls: { protocol: field(text, 'TLS Protocol'), cipher: field(text, 'Cipher'), serverTempKey: field(text, 'Server Temp Key'), alpn: field(text, 'Application protocol') },
  };
}

/** The `--log-file` rows, in file order (h2load writes them as responses end). */
export interface H2loadLog {
  count: number;
  /** µs since the epoch (wall clock) when the request was sent, after the handshake. */
  startUs: Float64Array;
  status: Uint16Array;
  /** µs from sending to the end of the response. */
  durationUs: Float64Array;
}

export function parseH2loadLog(text: string): H2loadLog {
  const lines = text.split('\n').filter((l) => l !== '');
  const log: H2loadLog = { count: lines.length, startUs: new Float64Array(lines.length), status: new Uint16Array(lines.length), durationUs: new Float64Array(lines.length) };
  lines.forEach((line, i) => {
    const [start, status, duration] = line.split('\t');
    const values = [Number(start), Number(status), Number(duration)];
    if (duration === undefined || !values.every(Number.isFinite)) throw new H2loadOutputError(`h2load log line ${i + 1} is not "start<TAB>status<TAB>duration": ${JSON.stringify(line)}`);
    log.startUs[i] = values[0]!;
    log.status[i] = values[1]!;
    log.durationUs[i] = values[2]!;
  });
  return log;
}

/**
 * Every request that did not end with a 2xx, by kind; they add up to total − 2xx. A 3xx is
 * an error here (h2load counts it a success); "connection error" is errored without timeout
 * (refused, reset, handshake failed, cut before the response).
 */
export function errorKinds(s: H2loadSummary): Record<string, number> {
  const kinds: Record<string, number> = {};
  const add = (kind: string, n: number): void => {
    if (n > 0) kinds[kind] = (kinds[kind] ?? 0) + n;
  };
  add('status 3xx', s.status['3xx']);
  add('status 4xx', s.status['4xx']);
  add('status 5xx', s.status['5xx']);
  add('timeout', s.requests.timeout);
  add('connection error', s.requests.errored - s.requests.timeout);
  const counted = Object.values(kinds).reduce((a, b) => a + b, 0);
  // A status outside 200–599, or counts h2load kept some other way: shown, not dropped.
  add('other', s.requests.total - s.status['2xx'] - counted);
  return kinds;
}

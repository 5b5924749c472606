/**
 * The load generators: a paced (open-loop) client whose latency counts from each request's
 * *scheduled* send time, a closed loop for maximum throughput (wrk when installed, else
 * undici), and the statistics they share.
 *
 * Why scheduled time: a closed-loop client that stalls with the server sends nothing while it
 * waits, so a 50 ms stall costs one slow sample instead of the 50 ms × rate requests a real
 * client population would have seen delayed (coordinated omission). Here a late request is
 * charged from when it should have gone, whoever made it late — the generator included,
 * which is why its own lateness is reported next to the figures.
 */
import { Pool, type Dispatcher } from 'undici';
import { run, sleep } from './processes.js';

export interface Latency {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export function latencyOf(values: Float64Array): Latency {
  const sorted = values.slice().sort();
  const n = sorted.length;
  const at = (p: number): number => (n === 0 ? NaN : sorted[Math.min(n - 1, Math.floor(p * n))]!);
  let sum = 0;
  for (const v of sorted) sum += v;
  return { count: n, mean: n === 0 ? NaN : sum / n, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: n === 0 ? NaN : sorted[n - 1]! };
}

export interface RateResult {
  target: string;
  rate: number;
  seconds: number;
  sent: number;
  ok: number;
  errors: number;
  /** `status 502`, `UND_ERR_SOCKET`, `timeout`…: what the errors were. */
  errorKinds: Record<string, number>;
  /** From the scheduled send time to the end of the response: the figure. */
  latency: Latency;
  /** From the actual send to the end of the response: what the target alone cost. */
  service: Latency;
  /** How late the generator itself sent (actual − scheduled): its own share of `latency`. */
  lag: Latency;
  /** Response bodies (container ids) and how often each came back. */
  bodies: Record<string, number>;
  /** The slowest requests: when they were scheduled (ms after the measured part began) and how long they took. */
  slowest: Array<{ atMs: number; ms: number }>;
}

const SLOWEST = 10;

export interface PacedTarget {
  name: string;
  origin: string;
  host: string;
  /** Every request on a new connection (`Connection: close`, undici's `reset`): what accepting costs at a rate. */
  newConnectionPerRequest?: boolean;
}

/** Enough keep-alive connections that a stall of tens of ms at 2000/s never queues in the client. */
const PACED_CONNECTIONS = 128;
const REQUEST_TIMEOUT_MS = 10_000;

/** `tls`: for an https origin, how to connect (`ca`, `servername`, `maxCachedSessions`…). */
export function pacedPool(origin: string, tls?: Pool.Options['connect']): Pool {
  return new Pool(origin, { connections: PACED_CONNECTIONS, pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, ...(tls === undefined ? {} : { connect: tls }) });
}

/**
 * `rate` GET / per second for `seconds`. Requests due at the same tick go out together; the
 * wait between ticks uses timers, not a spin, so the generator leaves the cores to the target.
 * `pool`: any undici dispatcher (a Pool of TLS connections for HTTPS targets).
 */
export async function constantRate(pool: Dispatcher, target: PacedTarget, rate: number, seconds: number, warmSeconds = 0): Promise<RateResult> {
  const total = Math.max(1, Math.floor(rate * seconds));
  // Sent first at the same rate, not recorded: the client's connections (and the target's
  // upstream ones) are those of this rate when the measured part starts, as with a steady
  // client population. Opening connections is measured on its own (newConnections).
  const warm = Math.floor(rate * warmSeconds);
  const interval = 1000 / rate;
  const latency = new Float64Array(total);
  const service = new Float64Array(total);
  const lag = new Float64Array(total);
  let ok = 0;
  let finished = 0;
  const errorKinds: Record<string, number> = {};
  const bodies: Record<string, number> = {};
  const fail = (kind: string): void => {
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  let allDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    allDone = resolve;
  });
  const settle = (): void => {
    if (++finished === total) allDone();
  };

  // Kept sorted, fastest first; a handful of entries, so insertion is cheap.
  const slowest: Array<{ atMs: number; ms: number }> = [];
  const noteSlow = (scheduled: number, ms: number): void => {
    if (slowest.length === SLOWEST && ms <= slowest[0]!.ms) return;
    slowest.push({ atMs: scheduled - measuredFrom, ms });
    slowest.sort((a, b) => a.ms - b.ms);
    if (slowest.length > SLOWEST) slowest.shift();
  };
  // `reset` only when asked: an explicit false would change undici's keep-alive handling.
  const options: Dispatcher.RequestOptions = { path: '/', method: 'GET', headers: { host: target.host }, ...(target.newConnectionPerRequest === true ? { reset: true } : {}) };
  const fire = (scheduled: number): void => {
    const sentAt = performance.now();
    if (scheduled < measuredFrom) {
      pool.request(options).then((res) => res.body.dump(), () => undefined).catch(() => undefined);
      return;
    }
    pool
      .request(options)
      .then(async (res) => {
        const body = await res.body.text();
        const end = performance.now();
        if (res.statusCode !== 200) return fail(`status ${res.statusCode}`);
        latency[ok] = end - scheduled;
        noteSlow(scheduled, end - scheduled);
        service[ok] = end - sentAt;
        lag[ok] = sentAt - scheduled;
        ok++;
        const id = body.trim();
        bodies[id] = (bodies[id] ?? 0) + 1;
      })
      .catch((err: unknown) => fail((err as { code?: string }).code ?? (err as Error).name ?? 'error'))
      .finally(settle);
  };

  const started = performance.now();
  const measuredFrom = started + warm * interval;
  const all = warm + total;
  let i = 0;
  while (i < all) {
    const now = performance.now();
    while (i < all && started + i * interval <= now) fire(started + i++ * interval);
    if (i >= all) break;
    const wait = started + i * interval - performance.now();
    await sleep(Math.max(1, Math.floor(wait)));
  }
  // Bounded: a request that never answers is counted as an error, not waited for forever.
  const drained = await Promise.race([done.then(() => true), sleep(REQUEST_TIMEOUT_MS + 5_000).then(() => false)]);
  const errors = total - ok;
  if (!drained) errorKinds['unfinished'] = total - finished;
  return {
    target: target.name,
    rate,
    seconds: (performance.now() - measuredFrom) / 1000,
    sent: total,
    ok,
    errors,
    errorKinds,
    latency: latencyOf(latency.subarray(0, ok)),
    service: latencyOf(service.subarray(0, ok)),
    lag: latencyOf(lag.subarray(0, ok)),
    bodies,
    slowest: slowest.reverse(),
  };
}

export interface ThroughputResult {
  target: string;
  tool: 'wrk' | 'undici';
  connections: number;
  seconds: number;
  requests: number;
  requestsPerSecond: number;
  errors: number;
  /** ms; wrk gives mean, p50, p90, p99 and max. */
  latency: { mean: number; p50: number; p90: number; p99: number; max: number };
  raw?: string;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  if (unit === 'us') return n / 1000;
  if (unit === 'ms') return n;
  if (unit === 's') return n * 1000;
  if (unit === 'm') return n * 60_000;
  return NaN;
}

export function parseWrk(target: string, connections: number, seconds: number, out: string): ThroughputResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m === null ? NaN : Number(m[1]);
  };
  const lat = (re: RegExp): number => {
    const m = re.exec(out);
    return m === null ? NaN : toMs(m[1]!, m[2]!);
  };
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = num(/Non-2xx or 3xx responses:\s+(\d+)/);
  const errors = (socketErrors === null ? 0 : socketErrors.slice(1).reduce((s, x) => s + Number(x), 0)) + (Number.isNaN(non2xx) ? 0 : non2xx);
  return {
    target,
    tool: 'wrk',
    connections,
    seconds: num(/requests in ([\d.]+)s/),
    requests: num(/(\d+) requests in/),
    requestsPerSecond: num(/Requests\/sec:\s+([\d.]+)/),
    errors,
    latency: {
      mean: lat(/Latency\s+([\d.]+)(us|ms|s|m)\s/),
      p50: lat(/\s50%\s+([\d.]+)(us|ms|s|m)/),
      p90: lat(/\s90%\s+([\d.]+)(us|ms|s|m)/),
      p99: lat(/\s99%\s+([\d.]+)(us|ms|s|m)/),
      max: lat(/Latency\s+[\d.]+(?:us|ms|s|m)\s+[\d.]+(?:us|ms|s|m)\s+([\d.]+)(us|ms|s|m)/),
    },
    raw: out,
  };
}

export async function hasWrk(): Promise<boolean> {
  const { stdout, stderr } = await run('wrk', ['--version']);
  return `${stdout}${stderr}`.includes('wrk');
}

/** `close`: every request on a new connection (Connection: close), to measure accepting connections. */
export async function wrk(target: PacedTarget, connections: number, seconds: number, close = false): Promise<ThroughputResult> {
  const url = `${target.origin}/`;
  const headers = ['-H', `Host: ${target.host}`, ...(close ? ['-H', 'Connection: close'] : [])];
  const { stdout, stderr } = await run('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--latency', ...headers, url], (seconds + 30) * 1000);
  const result = parseWrk(target.name, connections, seconds, stdout);
  if (!Number.isFinite(result.requestsPerSecond)) throw new Error(`could not read wrk's output for ${target.name}:\n${stdout}\n${stderr}`);
  return result;
}

/** The fallback when wrk is missing: `connections` undici loops back to back. */
export async function undiciClosedLoop(target: PacedTarget, connections: number, seconds: number): Promise<ThroughputResult> {
  const pool = new Pool(target.origin, { connections, pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  const samples: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          try {
            const res = await pool.request({ path: '/', method: 'GET', headers: { host: target.host } });
            await res.body.dump();
            if (res.statusCode === 200) samples.push(performance.now() - t0);
            else errors++;
          } catch {
            errors++;
          }
        }
      }),
    );
  } finally {
    await pool.close();
  }
  const elapsed = (performance.now() - started) / 1000;
  const l = latencyOf(Float64Array.from(samples));
  return { target: target.name, tool: 'undici', connections, seconds: elapsed, requests: samples.length, requestsPerSecond: samples.length / elapsed, errors, latency: { mean: l.mean, p50: l.p50, p90: l.p90, p99: l.p99, max: l.max } };
}

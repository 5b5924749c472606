/**
 * Propagation measured from the 200: after each change, probes start the moment the control
 * plane's 200 arrives and ask the router back to back until the new container answers.
 *
 * Why next to the pollers of propagation.ts: four closed-loop pollers keep the two cores of the
 * benchmark machine busy the whole time (they are a load of ~2000 req/s whose only limit is
 * the CPU), so every hop of a change — the router's wake-up for the message, the Redis reply,
 * the response to the poller — first waits for a core. Their figure is propagation *on a
 * saturated machine*. Here nothing polls between changes; optionally a paced load on another
 * app keeps the router busy at an ordinary rate. What is measured is exactly the issue's
 * definition — from the API's 200 to the first response from the new container — as a client
 * asking right after the 200 sees it. It is the easier measure: no request is caught in flight
 * across the change, and the cores are not saturated; both figures are reported.
 *
 * Between two changes the same probes also ask once with nothing changed (the control): what
 * one request from these four clients costs on this machine at that moment. Propagation can
 * be no faster than that; what it adds over the control is what the change itself costs.
 */
import { Client, type Dispatcher } from 'undici';
import { latencyOf, type Latency } from './load.js';
import type { Container, Platform } from './platform.js';
import { HOST, sleep } from './processes.js';
import type { Progress } from './progress.js';
import { CHANGE_TIMEOUT_MS, PROP_APP } from './propagation.js';

const PROBES = 4;

export interface Background {
  /** A pool to the router, and the Host of another app (on other containers). */
  pool: Dispatcher;
  host: string;
  rate: number;
}

export interface ProbedResult {
  changes: number;
  probes: number;
  /** req/s of other traffic through the router during the changes, 0 for none. */
  backgroundRate: number;
  backgroundSent: number;
  backgroundErrors: number;
  /** From the 200 to the first probe answered by the new container. */
  first: Latency;
  /** From the 200 until every probe was (every worker switched): the figure. */
  all: Latency;
  /** Control rounds between changes (no change): from sending to the first and the last answer. */
  controlFirst: Latency;
  controlAll: Latency;
  /** Answers from the old container to requests sent after the 200. */
  staleAnswers: number;
  notPropagated: number;
  apiMs: Latency;
  probeErrors: number;
  allMs: number[];
}

/** GET / at `rate` per second until stopped: requests due at one tick go out together. */
function pacedLoad(bg: Background): { stop(): Promise<{ sent: number; errors: number }> } {
  let stopped = false;
  let sent = 0;
  let errors = 0;
  const inFlight = new Set<Promise<void>>();
  const interval = 1000 / bg.rate;
  const loop = (async () => {
    const started = performance.now();
    let i = 0;
    while (!stopped) {
      const now = performance.now();
      while (started + i * interval <= now) {
        i++;
        sent++;
        const p = bg.pool
          .request({ path: '/', method: 'GET', headers: { host: bg.host } })
          .then(async (res) => {
            if (res.statusCode !== 200) errors++;
            await res.body.dump();
          })
          .catch(() => {
            errors++;
          });
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      await sleep(Math.max(1, Math.floor(started + i * interval - performance.now())));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await Promise.race([Promise.all(inFlight), sleep(10_000)]);
      return { sent, errors };
    },
  };
}

export async function probedPropagation(platform: Platform, routerPort: number, a: Container, b: Container, changes: number, progress: Progress, background?: Background): Promise<ProbedResult> {
  // One keep-alive connection per probe, opened in turn: the primary's round-robin accept
  // spreads them over the workers, as it does the pollers'.
  const clients = Array.from({ length: PROBES }, () => new Client(`http://${HOST}:${routerPort}`, { headersTimeout: 5_000, bodyTimeout: 5_000 }));
  let probeErrors = 0;
  const ask = async (client: Client): Promise<string | null> => {
    try {
      const res = await client.request({ path: '/', method: 'GET', headers: { host: `${PROP_APP}.localhost` } });
      const body = (await res.body.text()).trim();
      if (res.statusCode === 200) return body;
    } catch {
      // counted below
    }
    probeErrors++;
    // A broken connection must not turn into a hot loop of failures.
    await sleep(10);
    return null;
  };
  /** ms from `from` until `client` gets `expect`, and how many old answers it got first; NaN past the deadline. */
  const probe = async (client: Client, expect: string, from: number): Promise<{ ms: number; stale: number }> => {
    let stale = 0;
    const deadline = from + CHANGE_TIMEOUT_MS;
    while (performance.now() < deadline) {
      const body = await ask(client);
      if (body === expect) return { ms: performance.now() - from, stale };
      if (body !== null) stale++;
    }
    return { ms: NaN, stale };
  };

  await platform.scale(PROP_APP, [a]);
  const warm = await Promise.all(clients.map((c) => probe(c, a.id, performance.now())));
  if (warm.some((w) => Number.isNaN(w.ms))) throw new Error(`the router never served ${PROP_APP} from ${a.id}`);

  const load = background === undefined ? null : pacedLoad(background);
  const first: number[] = [];
  const all: number[] = [];
  const api: number[] = [];
  const controlFirst: number[] = [];
  const controlAll: number[] = [];
  let staleAnswers = 0;
  let notPropagated = 0;
  let bg = { sent: 0, errors: 0 };
  try {
    // The background's connections open and settle before the first measured change.
    if (load !== null) await sleep(1_000);
    for (let k = 1; k <= changes; k++) {
      const next = k % 2 === 1 ? b : a;
      const current = next === a ? b : a;
      // Mid-gap, so that the change finds the machine as idle as the control did.
      await sleep(10 + Math.random() * 15);
      const asked = performance.now();
      const control = await Promise.all(clients.map((c) => probe(c, current.id, asked)));
      const controlMs = control.map((c) => c.ms);
      if (!controlMs.some(Number.isNaN)) {
        controlFirst.push(Math.min(...controlMs));
        controlAll.push(Math.max(...controlMs));
      }
      await sleep(10 + Math.random() * 15);
      const sent = performance.now();
      await platform.scale(PROP_APP, [next]);
      const ok200 = performance.now();
      api.push(ok200 - sent);
      const seen = await Promise.all(clients.map((c) => probe(c, next.id, ok200)));
      for (const s of seen) staleAnswers += s.stale;
      const ms = seen.map((s) => s.ms);
      if (ms.some(Number.isNaN)) notPropagated++;
      else {
        first.push(Math.min(...ms));
        all.push(Math.max(...ms));
      }
      if (k % 25 === 0) progress.note(`${k}/${changes} changes${background === undefined ? '' : `, ${background.rate} req/s of other traffic`}`);
    }
  } finally {
    if (load !== null) bg = await load.stop();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }
  return {
    changes,
    probes: PROBES,
    backgroundRate: background?.rate ?? 0,
    backgroundSent: bg.sent,
    backgroundErrors: bg.errors,
    first: latencyOf(Float64Array.from(first)),
    all: latencyOf(Float64Array.from(all)),
    controlFirst: latencyOf(Float64Array.from(controlFirst)),
    controlAll: latencyOf(Float64Array.from(controlAll)),
    staleAnswers,
    notPropagated,
    apiMs: latencyOf(Float64Array.from(api)),
    probeErrors,
    allMs: all.map((x) => Math.round(x * 1000) / 1000),
  };
}

/**
 * Propagation: how long after the control plane's 200 a topology change is live in the
 * router. An app with one container flips between two containers; pollers hit the router
 * back to back, each on its own keep-alive connection (so, through the primary's round-robin
 * accept, on both workers), and note when each first gets an answer from the new container.
 */
import { Client } from 'undici';
import { latencyOf, type Latency } from './load.js';
import type { Container, Platform } from './platform.js';
import { HOST, sleep } from './processes.js';
import type { Progress } from './progress.js';

export const PROP_APP = 'prop';
const POLLERS = 4;
/** A change not seen by every poller within this is counted as not propagated. */
export const CHANGE_TIMEOUT_MS = 2_000;

export interface PropagationResult {
  changes: number;
  pollers: number;
  /** From the 200 to the first poller answered by the new container. */
  first: Latency;
  /** From the 200 until every poller was (every worker switched): the figure. */
  all: Latency;
  /** Changes some poller saw before the 200 reached us (counted as 0 ms). */
  seenBefore200: number;
  /** Changes not seen by every poller within CHANGE_TIMEOUT_MS. */
  notPropagated: number;
  /** The 200 itself: from sending the event. */
  apiMs: Latency;
  pollRequests: number;
  pollErrors: number;
  /** `all` of each propagated change, in order, ms: for the histogram `npm run loadtest` draws. */
  allMs: number[];
}

interface Round {
  expect: string;
  seen: number[];
}

export async function propagation(platform: Platform, routerPort: number, a: Container, b: Container, changes: number, progress: Progress): Promise<PropagationResult> {
  await platform.deploy(PROP_APP, [a]);
  let round: Round = { expect: a.id, seen: new Array<number>(POLLERS).fill(NaN) };
  let stop = false;
  let pollRequests = 0;
  let pollErrors = 0;
  const clients = Array.from({ length: POLLERS }, () => new Client(`http://${HOST}:${routerPort}`, { headersTimeout: 5_000, bodyTimeout: 5_000 }));
  const hardStop = performance.now() + changes * (CHANGE_TIMEOUT_MS + 200) + 30_000;
  const pollers = clients.map(async (client, p) => {
    while (!stop && performance.now() < hardStop) {
      try {
        const res = await client.request({ path: '/', method: 'GET', headers: { host: `${PROP_APP}.localhost` } });
        const body = (await res.body.text()).trim();
        const at = performance.now();
        pollRequests++;
        if (res.statusCode !== 200) pollErrors++;
        else if (body === round.expect && Number.isNaN(round.seen[p])) round.seen[p] = at;
      } catch {
        pollErrors++;
        // A broken connection must not turn into a hot loop of failures.
        await sleep(10);
      }
    }
  });

  const first: number[] = [];
  const all: number[] = [];
  const api: number[] = [];
  let seenBefore200 = 0;
  let notPropagated = 0;
  const waitAllSeen = async (r: Round, deadline: number): Promise<boolean> => {
    while (performance.now() < deadline) {
      if (r.seen.every((t) => !Number.isNaN(t))) return true;
      await sleep(1);
    }
    return false;
  };
  try {
    // Every poller on the initial container before the first measured change.
    if (!(await waitAllSeen(round, performance.now() + 5_000))) throw new Error(`the router never served ${PROP_APP} from ${a.id}`);
    for (let k = 1; k <= changes; k++) {
      const next = k % 2 === 1 ? b : a;
      const r: Round = { expect: next.id, seen: new Array<number>(POLLERS).fill(NaN) };
      round = r;
      const sent = performance.now();
      await platform.scale(PROP_APP, [next]);
      const ok200 = performance.now();
      api.push(ok200 - sent);
      if (!(await waitAllSeen(r, ok200 + CHANGE_TIMEOUT_MS))) {
        notPropagated++;
        continue;
      }
      const deltas = r.seen.map((t) => t - ok200);
      if (deltas.some((d) => d < 0)) seenBefore200++;
      first.push(Math.max(0, Math.min(...deltas)));
      all.push(Math.max(0, Math.max(...deltas)));
      if (k % 25 === 0) progress.note(`${k}/${changes} changes`);
      // Not a metronome: changes at a fixed phase of the pollers' loop would measure a lucky or unlucky alignment.
      await sleep(20 + Math.random() * 30);
    }
  } finally {
    stop = true;
    await Promise.race([Promise.all(pollers), sleep(6_000)]);
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  }
  return {
    changes,
    pollers: POLLERS,
    first: latencyOf(Float64Array.from(first)),
    all: latencyOf(Float64Array.from(all)),
    seenBefore200,
    notPropagated,
    apiMs: latencyOf(Float64Array.from(api)),
    pollRequests,
    pollErrors,
    allMs: all.map((ms) => Math.round(ms * 1000) / 1000),
  };
}

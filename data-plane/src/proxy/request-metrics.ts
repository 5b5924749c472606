/**
 * Cached metric children for the per-request metrics. prom-client hashes a label set on
 * every `inc({...})`; looking the child up once per (app, code) keeps that off the hot path.
 * The maps are bounded by RouterMetrics.appLabel's budget times the handful of codes.
 */
import type { Counter, Gauge, Histogram } from 'prom-client';
import type { RouterMetrics } from '../metrics.js';

const CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

function classIndex(status: number): number {
  const c = (status / 100) | 0;
  return c < 1 ? 1 : c > 5 ? 5 : c;
}

export class RequestMetrics {
  private readonly requests = new Map<string, Map<string, Array<Counter.Internal | undefined>>>();
  private readonly seconds: Array<Histogram.Internal<'class'>>;
  private readonly inflightByLabel = new Map<string, Gauge.Internal<'app'>>();
  private readonly http1: Counter.Internal;
  private readonly h2: Counter.Internal;

  constructor(readonly metrics: RouterMetrics) {
    this.seconds = CLASSES.map((c) => metrics.requestSeconds.labels(c));
    this.http1 = metrics.requestsByProtocol.labels('http/1.1');
    this.h2 = metrics.requestsByProtocol.labels('h2');
  }

  /** One answered HTTP request, by the client's protocol. */
  protocol(h2: boolean): void {
    (h2 ? this.h2 : this.http1).inc();
  }

  /** One answered request (`appLabel` from RouterMetrics.appLabel, or '-' when no app). */
  count(appLabel: string, status: number, code: string): void {
    let byCode = this.requests.get(appLabel);
    if (byCode === undefined) this.requests.set(appLabel, (byCode = new Map()));
    let byClass = byCode.get(code);
    if (byClass === undefined) byCode.set(code, (byClass = []));
    const idx = classIndex(status);
    let child = byClass[idx];
    if (child === undefined) byClass[idx] = child = this.metrics.requests.labels(appLabel, CLASSES[idx]!, code);
    child.inc();
  }

  /** Time from the request reaching the router to its response headers. */
  observe(status: number, seconds: number): void {
    this.seconds[classIndex(status)]!.observe(seconds);
  }

  inflight(appLabel: string): Gauge.Internal<'app'> {
    let child = this.inflightByLabel.get(appLabel);
    if (child === undefined) this.inflightByLabel.set(appLabel, (child = this.metrics.inflight.labels(appLabel)));
    return child;
  }
}

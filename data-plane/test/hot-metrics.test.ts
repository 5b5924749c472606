import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BucketHistogram, CounterCells, GaugeCells } from '../src/hot-metrics.js';
import { RouterMetrics } from '../src/metrics.js';
import { RequestMetrics } from '../src/proxy/request-metrics.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];
const SAMPLES = [0.0005, 0.001, 0.002, 0.05, 0.05, 0.5, 3, 0.0001];

test('BucketHistogram exposes exactly what prom-client\'s Histogram exposes for the same observations', async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const hist = new BucketHistogram('h_seconds', 'help text', 'class', BOUNDS, ours);
  const reference = new Histogram({ name: 'h_seconds', help: 'help text', labelNames: ['class'], buckets: BOUNDS, registers: [theirs] });
  // Created in the order of their first observation, the order prom-client lists its series in.
  const bad = hist.cell('5xx');
  const ok = hist.cell('2xx');
  hist.cell('4xx'); // never observed: listed by neither
  for (const [i, v] of SAMPLES.entries()) {
    (i % 3 === 0 ? bad : ok).observe(v);
    reference.labels(i % 3 === 0 ? '5xx' : '2xx').observe(v);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test('BucketHistogram sums across workers like a prom-client histogram under AggregatorRegistry', async () => {
  const workers = [new Registry(), new Registry()];
  const cells = workers.map((r) => new BucketHistogram('h_seconds', 'help', 'class', BOUNDS, r).cell('2xx'));
  cells[0]!.observe(0.005);
  cells[1]!.observe(0.005);
  cells[1]!.observe(2);
  const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
  const text = await merged.metrics();
  assert.match(text, /^h_seconds_bucket\{le="0.01",class="2xx"\} 2$/m);
  assert.match(text, /^h_seconds_bucket\{le="\+Inf",class="2xx"\} 3$/m);
  assert.match(text, /^h_seconds_count\{class="2xx"\} 3$/m);
});

test('counter cells reach the counter at each read and keep adding up; gauge cells set their gauge', async () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'c_total', help: 'c', labelNames: ['app', 'code'], registers: [registry] });
  const gauge = new Gauge({ name: 'g', help: 'g', labelNames: ['app'], registers: [registry] });
  const counters = new CounterCells(counter);
  const gauges = new GaugeCells(gauge);
  const a = counters.cell('a', '-');
  const b = counters.cell('b', 'UNKNOWN_HOST');
  const inflight = gauges.cell('a');
  a.n += 3;
  inflight.n = 2;
  let text = await registry.metrics();
  assert.match(text, /^c_total\{app="a",code="-"\} 3$/m);
  assert.doesNotMatch(text, /app="b"/, 'a cell never counted is not a series yet');
  assert.match(text, /^g\{app="a"\} 2$/m);
  a.n += 2;
  b.n += 1;
  inflight.n = 0;
  text = await registry.metrics();
  assert.match(text, /^c_total\{app="a",code="-"\} 5$/m);
  assert.match(text, /^c_total\{app="b",code="UNKNOWN_HOST"\} 1$/m);
  assert.match(text, /^g\{app="a"\} 0$/m);
  assert.equal(a.n, 0, 'flushed');
});

test('one RequestMetrics per RouterMetrics, so the in-flight gauge has one writer', async () => {
  const metrics = new RouterMetrics(10);
  const a = RequestMetrics.of(metrics);
  assert.equal(RequestMetrics.of(metrics), a);
  a.inflight('app').n += 2;
  // A second server on the same metrics (no shared state passed) sees the same cells.
  RequestMetrics.of(metrics).inflight('app');
  assert.match(await metrics.registry.metrics(), /^router_inflight_requests\{app="app"\} 2$/m);
  assert.notEqual(RequestMetrics.of(new RouterMetrics(10)), a);
});

test('BucketHistogram.reset zeroes the cells, which go on counting', async () => {
  const registry = new Registry();
  const hist = new BucketHistogram('h_seconds', 'help', 'class', BOUNDS, registry);
  const cell = hist.cell('2xx');
  cell.observe(0.05);
  registry.resetMetrics();
  assert.doesNotMatch(await registry.metrics(), /h_seconds_count/);
  cell.observe(0.5);
  assert.match(await registry.metrics(), /^h_seconds_count\{class="2xx"\} 1$/m);
});

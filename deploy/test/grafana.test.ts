import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { Registry } from 'prom-client';
import { AccessLogMetrics } from '../../data-plane/src/access-logs/metrics.js';
import { RouterMetrics } from '../../data-plane/src/metrics.js';
import { ControlPlaneMetrics } from '../../control-plane/src/metrics.js';
import { isObject, readRepoFile, repoPath } from './deploy-files.js';

/**
 * Metric names the dashboard uses that come with branches not merged here yet. Each list
 * goes at its merge: the test fails once a registry has one of them, as a reminder.
 */
const NOT_MERGED = new Set<string>([]);

const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

async function namesOf(registry: Registry): Promise<string[]> {
  return (await registry.getMetricsAsJSON()).flatMap((m) => [m.name, ...(SUFFIXES[m.type as unknown as string] ?? []).map((s) => `${m.name}${s}`)]);
}

/** The shipper's registry once its metrics file is on this branch (it comes with the shipper branch). */
async function shipperNames(): Promise<string[] | null> {
  const file = repoPath('dist', 'log-shipper', 'src', 'metrics.js');
  if (!existsSync(file)) return null;
  const module = (await import(pathToFileURL(file).href)) as { ShipperMetrics: new () => { registry: Registry } };
  return namesOf(new module.ShipperMetrics().registry);
}

const FUNCTIONS_AND_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'sum', 'min', 'max', 'avg', 'count', 'topk', 'bottomk', 'quantile', 'stddev', 'stdvar', 'inf', 'nan']);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords, labels or strings. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/\$\{?\w+\}?/g, ''); // dashboard variables
  const names: string[] = [];
  for (const m of stripped.matchAll(/(?<![A-Za-z0-9_.:])[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)/g)) {
    if (m[1] !== undefined) continue; // a function call
    if (FUNCTIONS_AND_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

/** Every PromQL query of the dashboard: panel targets, nested panels of rows, templating queries. */
function queries(dashboard: Record<string, unknown>): string[] {
  const out: string[] = [];
  const visit = (panels: unknown): void => {
    if (!Array.isArray(panels)) return;
    for (const p of panels) {
      if (!isObject(p)) continue;
      for (const t of Array.isArray(p['targets']) ? p['targets'] : []) if (isObject(t) && typeof t['expr'] === 'string') out.push(t['expr']);
      visit(p['panels']);
    }
  };
  visit(dashboard['panels']);
  const templating = isObject(dashboard['templating']) && Array.isArray(dashboard['templating']['list']) ? dashboard['templating']['list'] : [];
  for (const v of templating) {
    if (!isObject(v) || v['type'] !== 'query') continue;
    const q = isObject(v['query']) ? v['query']['query'] : v['query'];
    // label_values(metric, label): only the metric is a name.
    const m = /^label_values\(\s*([^,)]+)\s*,\s*\w+\s*\)$/.exec(String(q));
    out.push(m ? m[1]! : String(q));
  }
  return out;
}

test('the PromQL name extraction finds metrics, not functions, labels or keywords', () => {
  assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le, class) (rate(router_request_duration_seconds_bucket{app=~"$app"}[$__rate_interval])))'), ['router_request_duration_seconds_bucket']);
  assert.deepEqual(metricNames('sum(rate(a_total{result=~"hit|stale"}[5m])) / sum without (x) (rate(b_total[5m])) > bool 0.5'), ['a_total', 'b_total']);
  assert.deepEqual(metricNames('bottomk(10, min by (domain) (router_cert_expiry_days)) * 1e3'), ['router_cert_expiry_days']);
});

test('every metric of the Grafana dashboard exists in the services\' registries', async (t) => {
  const dashboard = JSON.parse(readRepoFile('deploy', 'grafana', 'platform-dashboard.json')) as Record<string, unknown>;
  const exprs = queries(dashboard);
  assert.ok(exprs.length > 20, 'the dashboard has its queries');
  // The access-log metrics live on the router's registry, registered when shipping starts.
  const router = new RouterMetrics(10);
  new AccessLogMetrics(router);
  const known = new Set([...(await namesOf(router.registry)), ...(await namesOf(new ControlPlaneMetrics().registry))]);
  const shipper = await shipperNames();
  if (shipper === null) t.diagnostic('log-shipper/src/metrics.ts is not on this branch yet: log_shipper_* names are taken from NOT_MERGED');
  for (const name of shipper ?? []) known.add(name);

  for (const name of NOT_MERGED) assert.equal(known.has(name), false, `${name} is in a registry now: remove it from NOT_MERGED`);
  const used = new Set(exprs.flatMap(metricNames));
  const unknown = [...used].filter((n) => !known.has(n) && !NOT_MERGED.has(n.replace(/_(bucket|sum|count)$/, '')) && !NOT_MERGED.has(n));
  assert.deepEqual(unknown, [], 'metric names no service exports');
  // What the dashboard is for: each of these families has a panel.
  for (const needed of ['router_requests_total', 'router_request_duration_seconds_bucket', 'router_route_cache_total', 'router_config_version_lag', 'router_config_version', 'router_websockets_open', 'router_tls_handshakes_total', 'control_plane_events_total', 'router_access_log_lines_dropped_total', 'log_shipper_batches_received_total']) {
    assert.ok(used.has(needed), `a panel uses ${needed}`);
  }
  const stale = [...NOT_MERGED].filter((n) => ![...used].some((u) => u === n || u.replace(/_(bucket|sum|count)$/, '') === n));
  assert.deepEqual(stale, [], 'NOT_MERGED names the dashboard does not use');
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { barChart } from '../charts/bar-chart.js';
import { bucketCounts, histogram } from '../charts/histogram.js';
import { logsCharts, PROPAGATION_EDGES, routerCharts, tlsCharts, type LogRun } from '../charts/report-charts.js';
import { esc } from '../charts/svg.js';
import type { Results } from '../router-bench/report.js';
import type { TlsResults } from '../tls-bench/report.js';
import { parseXml, type XmlElement } from './xml-check.js';

const bars = (els: XmlElement[]): XmlElement[] => els.filter((e) => e.name === 'rect' && e.attrs['class'] === 'bar');
const byClass = (els: XmlElement[], cls: string): XmlElement[] => els.filter((e) => e.attrs['class'] === cls);
const lat = (mean: number, p99: number) => ({ count: 100, mean, p50: mean, p90: p99, p99, p999: p99, max: p99 });

describe('SVG charts', () => {
  it('escapes the five XML specials', () => {
    assert.equal(esc(`a<b>&"c'`), 'a&lt;b&gt;&amp;&quot;c&apos;');
  });

  it('the well-formedness check rejects broken documents', () => {
    assert.throws(() => parseXml('<svg><g></svg>'), /closes/);
    assert.throws(() => parseXml('<svg><text>a & b</text></svg>'), /bad entity/);
    assert.throws(() => parseXml('<svg a="1" a="2"/>'), /duplicate/);
    assert.throws(() => parseXml('<a/><b/>'), /more than one root/);
  });

  it('draws one bar and one p99 marker per measured value, grouped by rate, with escaped text', () => {
    const title = 'Latency <router & "nginx">';
    const svg = barChart({
      title, xLabel: 'req/s', yLabel: 'ms', series: ['direct', 'nginx', 'router <new>'], log: true, markerLabel: 'p99', unit: 'ms',
      groups: [
        { label: '100', values: [{ value: 0.4, marker: 1.2 }, { value: 0.6, marker: 2 }, { value: 0.7, marker: 3 }] },
        { label: '1000', values: [{ value: 0.5, marker: 1.5 }, null, { value: 0.9, marker: 40 }] },
      ],
    });
    const els = parseXml(svg);
    assert.equal(els[0]!.name, 'svg');
    assert.match(els[0]!.attrs['viewBox'] ?? '', /^0 0 \d+(\.\d)? \d+$/);
    assert.equal(bars(els).length, 5);
    assert.equal(byClass(els, 'marker').length, 5);
    assert.deepEqual(byClass(els, 'group-label').map((e) => e.text), ['100', '1000']);
    assert.equal(byClass(els, 'title')[0]!.text, title);
    assert.ok(svg.includes('Latency &lt;router &amp; &quot;nginx&quot;&gt;'));
    const legend = els.filter((e) => e.name === 'text').map((e) => e.text);
    for (const name of ['direct', 'nginx', 'router <new>', 'p99']) assert.ok(legend.includes(name), name);
    // Log axis: decades labelled, and covering the largest p99.
    const ticks = byClass(els, 'tick').map((e) => e.text);
    assert.ok(ticks.includes('1') && ticks.includes('10') && ticks.includes('100'), ticks.join(','));
    const tooltip = els.find((e) => e.name === 'title' && e.text.startsWith('router <new>, 1000'));
    assert.equal(tooltip?.text, 'router <new>, 1000: 0.9 ms; p99 40 ms');
  });

  it('puts each value into its histogram bucket, the last open-ended', () => {
    const counts = bucketCounts([0, 0.5, 1, 4.9, 5, 9.99, 10, 250, Number.NaN], [0, 1, 5, 10]);
    assert.deepEqual(counts, [
      { label: '0–1', count: 2 },
      { label: '1–5', count: 2 },
      { label: '5–10', count: 2 },
      { label: '≥ 10', count: 2 },
    ]);
    const els = parseXml(histogram({ title: 'p', xLabel: 'ms', yLabel: 'changes', values: [1, 2, 3], edges: [0, 2, 4] }));
    assert.equal(bars(els).length, 3);
    assert.deepEqual(byClass(els, 'value').map((e) => e.text), ['1', '2', '0']);
  });

  it('draws the router experiments: rates, reload, throughput, propagation', () => {
    const rate = (target: string, r: number, mean: number) => ({ target, rate: r, latency: lat(mean, mean * 4) });
    const r = {
      rates: [rate('router', 100, 1), rate('direct', 100, 0.5), rate('nginx', 100, 0.8), rate('router', 2000, 2), rate('direct', 2000, 0.6), rate('nginx', 2000, 1)],
      topology: [
        { label: 'router, scale every 20 s', target: 'router', everyMs: 20_000, run: { rate: 1000, latency: lat(1, 5) } },
        { label: 'router, scale every 1 s', target: 'router', everyMs: 1000, run: { rate: 1000, latency: lat(1.2, 6) } },
        { label: 'nginx, reload every 1 s', target: 'nginx', everyMs: 1000, run: { rate: 1000, latency: lat(3, 90) } },
      ],
      throughput: { median: { direct: 30_000, nginx: 20_000, router: 8000 }, rounds: [{ connections: 50 }] },
      propagation: { changes: 5, all: lat(3, 12), notPropagated: 0, allMs: [0.5, 2.5, 3, 12, 150] },
    } as unknown as Partial<Results>;
    const set = routerCharts(r);
    assert.deepEqual(set.charts.map((c) => c.slug), ['http-latency', 'throughput', 'reload-latency', 'propagation']);
    const [http, tput, reload, prop] = set.charts.map((c) => parseXml(c.svg));
    assert.equal(bars(http!).length, 6);
    assert.deepEqual(bars(http!).slice(0, 3).map((b) => b.attrs['data-series']), ['direct', 'nginx', 'router']);
    assert.equal(bars(tput!).length, 3);
    // nginx was only reloaded every 1 s: 3 bars in 2 groups.
    assert.equal(bars(reload!).length, 3);
    assert.deepEqual(byClass(reload!, 'group-label').map((e) => e.text), ['20 s', '1 s']);
    // A target keeps its colour from chart to chart, whichever targets the chart has.
    const fill = (els: XmlElement[], series: string): string | undefined => bars(els).find((b) => b.attrs['data-series'] === series)?.attrs['fill'];
    assert.equal(fill(http!, 'router'), fill(reload!, 'router'));
    assert.equal(fill(http!, 'nginx'), fill(reload!, 'nginx'));
    assert.notEqual(fill(http!, 'router'), fill(http!, 'nginx'));
    assert.equal(bars(prop!).length, PROPAGATION_EDGES.length);
    assert.equal(byClass(prop!, 'value').reduce((s, e) => s + Number(e.text), 0), 5);
  });

  it('says so when an old router report has no propagation samples', () => {
    const set = routerCharts({ propagation: { changes: 5, all: lat(1, 2), notPropagated: 0 } } as unknown as Partial<Results>);
    assert.equal(set.charts.length, 0);
    assert.match(set.markdown.join('\n'), /predates/);
  });

  it('draws HTTPS rates and handshakes for ECDSA and RSA × TLS version', () => {
    const t = { http: 'router http', https: 'router https', httpsNew: 'router https, new connection', nginxHttp: 'nginx http', nginxHttps: 'nginx https', nginxHttpsNew: 'nginx https, new connection' };
    const rates = [250, 1000].flatMap((rate) => Object.values(t).map((target, i) => ({ target, rate, latency: lat(1 + i, 4 + i) })));
    const ratios = ['ec', 'rsa'].flatMap((keyType) => ['TLSv1.3', 'TLSv1.2'].map((version) => ({ keyType, version, router: 900, nginx: 1800, ratio: 0.5 })));
    const set = tlsCharts({ rates, rateTargets: t, handshakes: { ratios } } as unknown as Partial<TlsResults>);
    const [https, hs] = set.charts.map((c) => parseXml(c.svg));
    // Plain HTTP is in the report's table, not in this chart: 4 series × 2 rates.
    assert.equal(bars(https!).length, 8);
    assert.equal(byClass(https!, 'marker').length, 8);
    assert.equal(bars(hs!).length, 8);
    assert.deepEqual(byClass(hs!, 'group-label').map((e) => e.text), ['ECDSA, TLS 1.3', 'ECDSA, TLS 1.2', 'RSA, TLS 1.3', 'RSA, TLS 1.2']);
  });

  it('draws the new-connection series from h2load\'s rows when the report has them', () => {
    const t = { http: 'router http', https: 'router https', httpsNew: 'router https, new connection', nginxHttp: 'nginx http', nginxHttps: 'nginx https', nginxHttpsNew: 'nginx https, new connection' };
    const rates = [250, 1000].flatMap((rate) => [t.http, t.https, t.nginxHttp, t.nginxHttps].map((target) => ({ target, rate, latency: lat(1, 4) })));
    const newConnections = [250, 1000].flatMap((rate) => [t.httpsNew, t.nginxHttpsNew].map((target) => ({ target, rate, latency: lat(7, 9) })));
    const [https] = tlsCharts({ rates, newConnections, rateTargets: t } as unknown as Partial<TlsResults>).charts.map((c) => parseXml(c.svg));
    assert.equal(bars(https!).length, 8);
    assert.equal(bars(https!).filter((b) => b.attrs['data-series'] === 'router new connection').length, 2);
    assert.match(byClass(https!, 'subtitle').map((e) => e.text).join(), /h2load/);
  });

  it('draws the log-shipper remaining lines and CPU per rate, with a table', () => {
    const run = (rate: number, remaining: number): LogRun => ({ apps: 100, rate, seconds: 5, remaining, lost: 0, cpuCores: rate / 2000, senderCores: 0.2, peakRssMiB: 90 });
    const set = logsCharts({ rates: [run(250, 0), run(312, 4096), run(1000, 1_250_000)], search: [[{ ...run(2000, 0), apps: 10_000 }]] });
    const [remaining, cpu] = set.charts.map((c) => parseXml(c.svg));
    assert.equal(bars(remaining!).length, 3);
    assert.deepEqual(byClass(remaining!, 'value').map((e) => e.text), ['0', '4096', '1.25M']);
    assert.equal(bars(cpu!).length, 6);
    const table = set.markdown.join('\n').split('\n');
    assert.equal(table.length, 2 + 4);
    assert.match(table[3]!, /^\| 100 \| 312 \| 20\.4 \| 4096 \| 0 \|/);
  });
});

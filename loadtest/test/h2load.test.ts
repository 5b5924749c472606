/**
 * Reading h2load's output into the TLS benchmark's figures, from real h2load 1.52 runs saved
 * as fixtures (loadtest/test/fixtures):
 *
 * - h2load-router.out/.tsv: the TLS benchmark's measured run against the router, 250 conn/s for 2 s;
 * - h2load-errors.out/.tsv: `h2load --h1 -c 9 -n 9 -r 3 --rate-period 10ms -t 1 -T 1s -N 1s`
 *   against a Node HTTPS server answering 502, 200, then nothing, in turn;
 * - h2load-refused.out: the same against a closed port (no log rows).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sourcePath } from '../../proto/source-path.js';
import { errorKinds, H2loadOutputError, parseH2loadLog, parseH2loadSummary } from '../tls-bench/h2load-output.js';
import { h2loadArgs, ratePlan } from '../tls-bench/h2load.js';
import { newConnectionFigures } from '../tls-bench/new-connections.js';

const fixture = (name: string): string => readFileSync(sourcePath(import.meta.url, 'fixtures', name), 'utf8');

describe('h2load output', () => {
  it('reads a clean run against the router', () => {
    const summary = parseH2loadSummary(fixture('h2load-router.out'));
    const log = parseH2loadLog(fixture('h2load-router.tsv'));
    assert.deepEqual(summary.requests, { total: 500, started: 500, done: 500, succeeded: 500, failed: 0, errored: 0, timeout: 0 });
    assert.deepEqual(summary.status, { '2xx': 500, '3xx': 0, '4xx': 0, '5xx': 0 });
    assert.equal(summary.finishedMs, 2020);
    assert.deepEqual(summary.connect, { min: 2.49, max: 44.13, mean: 8.96, sd: 4.51 });
    assert.deepEqual(summary.request, { min: 0.924, max: 31.19, mean: 6.36, sd: 4.41 });
    assert.deepEqual(summary.firstByte, { min: 3.8, max: 62.51, mean: 15.33, sd: 6.46 });
    assert.equal(summary.tls.protocol, 'TLSv1.3');
    assert.equal(summary.tls.alpn, 'http/1.1');
    assert.equal(log.count, 500);
    assert.ok(log.status.every((s) => s === 200));
    assert.deepEqual(errorKinds(summary), {});
    const args = ['--h1', '-c', '500', '-n', '500', '-r', '5', '--rate-period', '20ms'];
    const r = newConnectionFigures('router https, new connection', 250, 2, { args, summary, log, wallMs: summary.finishedMs, cpuMs: 100 });
    assert.equal(r.sent, 500);
    assert.equal(r.ok, 500);
    assert.equal(r.errors, 0);
    assert.equal(r.latency.count, 500);
    // The log and the summary describe the same requests.
    assert.ok(Math.abs(r.latency.max - summary.request.max) < 0.01);
    assert.ok(Math.abs(r.latency.mean - summary.request.mean) < 0.01);
    assert.equal(r.scheduledSpanMs, 99 * 20);
    assert.ok(r.connect.min <= r.connect.mean && r.connect.mean <= r.connect.max);
    assert.equal(r.generator.usPerConnection, 200);
  });

  it('counts non-2xx, timeouts and connection errors as errors, and takes latency from 2xx rows only', () => {
    const summary = parseH2loadSummary(fixture('h2load-errors.out'));
    assert.deepEqual(summary.requests, { total: 9, started: 9, done: 6, succeeded: 3, failed: 6, errored: 3, timeout: 3 });
    assert.deepEqual(summary.status, { '2xx': 3, '3xx': 0, '4xx': 0, '5xx': 3 });
    assert.equal(summary.finishedMs, 1040);
    assert.deepEqual(summary.connect, { min: 7.54, max: 15.17, mean: 10.69, sd: 2.83 });
    assert.deepEqual(summary.tls, { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', serverTempKey: 'X25519 253 bits', alpn: 'http/1.1' });
    // Timed-out requests never reach the log; the 502s do.
    const log = parseH2loadLog(fixture('h2load-errors.tsv'));
    assert.equal(log.count, 6);
    assert.deepEqual([...log.status], [502, 200, 502, 200, 502, 200]);
    assert.deepEqual(errorKinds(summary), { 'status 5xx': 3, timeout: 3 });

    const r = newConnectionFigures('x', 300, 0.03, { args: [], summary, log, wallMs: 1050, cpuMs: 20 });
    assert.equal(r.errors, 6);
    assert.equal(Object.values(r.errorKinds).reduce((a, b) => a + b, 0), r.errors);
    assert.equal(r.latency.count, 3);
    assert.equal(r.latency.max, 7.32);
    assert.deepEqual(r.plan, { perPeriod: 3, periodMs: 10 });
    // 3 ticks of 10 ms: 20 ms scheduled; the log's starts spread over 23.957 ms.
    assert.equal(r.scheduledSpanMs, 20);
    assert.equal(r.startSpanMs, 23.957);
    assert.ok(Math.abs(r.achievedRate - (300 * 20) / 23.957) < 1e-9);
    assert.equal(r.behind, true);
  });

  it('reads a run where no connection was made, without inventing connection times', () => {
    const summary = parseH2loadSummary(fixture('h2load-refused.out'));
    assert.deepEqual(summary.requests, { total: 4, started: 0, done: 0, succeeded: 0, failed: 4, errored: 4, timeout: 0 });
    assert.deepEqual(errorKinds(summary), { 'connection error': 4 });
    const r = newConnectionFigures('x', 200, 0.02, { args: [], summary, log: parseH2loadLog(''), wallMs: 12, cpuMs: 0 });
    assert.equal(r.errors, 4);
    assert.ok(Number.isNaN(r.connect.mean));
    assert.ok(Number.isNaN(r.achievedRate));
    assert.equal(r.behind, false);
  });

  it('refuses output that is not an h2load summary or log, with a stable code', () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
        return undefined;
      } catch (err) {
        assert.ok(err instanceof H2loadOutputError);
        return err.code;
      }
    };
    assert.equal(code(() => parseH2loadSummary('starting benchmark...\nclient could not connect to host\n')), 'H2LOAD_OUTPUT');
    assert.equal(code(() => parseH2loadSummary(fixture('h2load-errors.out').replace('time for connect:', 'time for konnect:'))), 'H2LOAD_OUTPUT');
    assert.equal(code(() => parseH2loadLog('1795404684158133\t502\n')), 'H2LOAD_OUTPUT');
  });

  it('plans whole connections per period, 10 ms when the rate allows', () => {
    assert.deepEqual([100, 250, 500, 750, 1000, 333].map(ratePlan), [
      { perPeriod: 1, periodMs: 10 },
      { perPeriod: 5, periodMs: 20 },
      { perPeriod: 5, periodMs: 10 },
      { perPeriod: 15, periodMs: 20 },
      { perPeriod: 10, periodMs: 10 },
      { perPeriod: 333, periodMs: 1000 },
    ]);
    const args = h2loadArgs({ host: 'ec-0001.tls-bench.test', address: '127.0.0.1', port: 8443, rate: 750, seconds: 10, timeoutSeconds: 10, outputFile: '/tmp/o', logFile: '/tmp/l' });
    const after = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
    assert.equal(after('-c'), '7500');
    assert.equal(after('-n'), '7500');
    assert.equal(after('-r'), '15');
    assert.equal(after('--rate-period'), '20ms');
    assert.equal(after('--connect-to'), '127.0.0.1:8443');
    assert.equal(args.at(-1), 'https://ec-0001.tls-bench.test:8443/');
  });
});

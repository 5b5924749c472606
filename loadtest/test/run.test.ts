import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXPERIMENT_NAMES, parseRunArgs, UsageError } from '../run/experiments.js';
import { chartsSection, LATEST_END, LATEST_START, updateLatest, withChartsSection } from '../run/markdown.js';

describe('npm run loadtest', () => {
  it('maps each experiment onto its bench and parts', () => {
    const only = (name: string): string => parseRunArgs([name]).experiments.map((e) => `${e.script} ${e.args.join(' ')}`.trim()).join();
    assert.equal(only('http'), 'router-bench.js --only http,throughput');
    assert.equal(only('reload'), 'router-bench.js --only reload,propagation');
    assert.equal(only('websocket'), 'router-bench.js --only websocket');
    assert.equal(only('https'), 'tls-bench.js');
    assert.equal(only('logs'), 'logs-bench.js');
    assert.deepEqual(parseRunArgs(['all', '--quick']).experiments.map((e) => e.name), [...EXPERIMENT_NAMES]);
  });

  it('passes options through to one bench, updates the docs on full runs only', () => {
    const o = parseRunArgs(['http', '--rates', '100,200', '--seconds', '3']);
    assert.deepEqual(o.passThrough, ['--rates', '100,200', '--seconds', '3']);
    assert.equal(o.updateDocs, true);
    assert.equal(parseRunArgs(['logs', '--quick']).updateDocs, false);
    assert.equal(parseRunArgs(['logs', '--quick', '--update-docs']).updateDocs, true);
    assert.deepEqual(parseRunArgs(['logs', '--no-docs']).passThrough, []);
  });

  it('refuses what would measure something else than asked', () => {
    const code = (argv: string[]): string => {
      try {
        parseRunArgs(argv);
        return 'accepted';
      } catch (err) {
        assert.ok(err instanceof UsageError);
        return err.code;
      }
    };
    assert.equal(code([]), 'LOADTEST_USAGE');
    assert.equal(code(['tcp']), 'LOADTEST_USAGE');
    assert.equal(code(['http', '--only', 'memory']), 'LOADTEST_USAGE');
    assert.equal(code(['all', '--rates', '100']), 'LOADTEST_USAGE');
  });

  it('replaces the Charts section of a report instead of adding a second', () => {
    const section = chartsSection([{ file: 'router-x-http latency.svg', title: 'Latency [ms]' }], { charts: [], markdown: ['a note'] });
    assert.match(section, /!\[Latency \\\[ms\\\]\]\(router-x-http%20latency\.svg\)/);
    const once = withChartsSection('# Report\n\nbody\n', section);
    const twice = withChartsSection(once, section);
    assert.equal(twice, once);
    assert.equal(once.split('## Charts').length, 2);
  });

  it('keeps the other experiments in the latest-reports list and leaves a document without the markers alone', () => {
    const doc = `# B\n\n${LATEST_START}\n- **http**: [old-http](x)\n- **logs**: [old-logs](y)\n${LATEST_END}\n\nrest\n`;
    const next = updateLatest(doc, { logs: '[new-logs](z)', https: '[tls](t)' });
    assert.equal(next, `# B\n\n${LATEST_START}\n- **http**: [old-http](x)\n- **https**: [tls](t)\n- **logs**: [new-logs](z)\n${LATEST_END}\n\nrest\n`);
    assert.equal(updateLatest('# no markers\n', { logs: 'x' }), '# no markers\n');
  });
});

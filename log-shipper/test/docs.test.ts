import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { sourcePath } from '../../proto/source-path.js';
import { logShipperVariables } from '../src/config.js';
import { SHIPPER_ERRORS } from '../src/errors.js';
import { ShipperMetrics } from '../src/metrics.js';

function section(doc: string, heading: string): string {
  const start = doc.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `${heading} is in the doc`);
  const next = doc.indexOf('\n## ', start + heading.length + 2);
  return doc.slice(start, next < 0 ? undefined : next);
}

test('every log shipper variable is in the Log shipper table of docs/OPERATIONS.md', async () => {
  const doc = section(await readFile(sourcePath(import.meta.url, '..', '..', 'docs', 'OPERATIONS.md'), 'utf8'), '## Log shipper');
  for (const v of Object.values(logShipperVariables)) {
    assert.ok(doc.includes(`| \`${v.name}\` |`) || doc.includes(`\`${v.name}\`,`) || doc.includes(`\`${v.name}\` |`), `${v.name} is documented`);
  }
});

test('every log shipper metric is named in docs/OPERATIONS.md', async () => {
  const doc = section(await readFile(sourcePath(import.meta.url, '..', '..', 'docs', 'OPERATIONS.md'), 'utf8'), '## Log shipper');
  const metrics = new ShipperMetrics();
  const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('log_shipper_'));
  assert.ok(names.length > 20);
  for (const name of names) assert.ok(doc.includes(`\`${name}`), `${name} is documented`);
});

test('every log shipper error code is in docs/API.md with its status', async () => {
  const doc = section(await readFile(sourcePath(import.meta.url, '..', '..', 'docs', 'API.md'), 'utf8'), '## Log shipper API');
  for (const [code, def] of Object.entries(SHIPPER_ERRORS)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} has a row`);
    assert.equal(row.split('|')[2]?.trim(), String(def.http), `${code} status`);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { sourcePath } from '../../proto/source-path.js';
import { ROUTER_ERRORS } from '../src/errors.js';
import { routerVariables } from '../src/config.js';
import { controlPlaneVariables } from '../../control-plane/src/config.js';

const operations = readFile(sourcePath(import.meta.url, '..', '..', 'docs', 'OPERATIONS.md'), 'utf8');

test('every router answer code is documented with its status', async () => {
  const doc = await operations;
  for (const [code, def] of Object.entries(ROUTER_ERRORS)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} has a row in docs/OPERATIONS.md`);
    assert.equal(row.split('|')[2]?.trim(), String(def.status), `${code} status`);
  }
});

test('every environment variable of the router and the control plane is documented', async () => {
  const doc = await operations;
  for (const v of [...Object.values(routerVariables), ...Object.values(controlPlaneVariables)]) {
    assert.ok(doc.includes(`| \`${v.name}\` |`), `${v.name} is in a table of docs/OPERATIONS.md`);
  }
});

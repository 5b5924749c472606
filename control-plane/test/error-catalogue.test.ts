import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ERRORS } from '../src/errors.js';
import { sourcePath } from '../../proto/source-path.js';

test('every error code is documented in docs/API.md with its HTTP and gRPC status', async () => {
  const api = await readFile(sourcePath(import.meta.url, '..', '..', 'docs', 'API.md'), 'utf8');
  // API.md also documents the log shipper, whose codes have their own table: read only ours.
  const start = api.indexOf('\n## Error codes\n');
  assert.ok(start >= 0, 'docs/API.md has an "## Error codes" section');
  const end = api.indexOf('\n## ', start + 1);
  const doc = api.slice(start, end < 0 ? undefined : end);
  const grpcName = new Map(Object.entries(GrpcStatus).map(([name, value]) => [value, name]));
  for (const [code, def] of Object.entries(ERRORS)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} has a row in the error table`);
    const cells = row.split('|').map((c) => c.trim());
    assert.equal(cells[2], String(def.http), `${code} HTTP status`);
    assert.equal(cells[3], grpcName.get(def.grpc), `${code} gRPC status`);
  }
  const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  for (const code of documented) assert.ok(code! in ERRORS, `${code} is documented but not in the catalogue`);
});

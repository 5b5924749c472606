import { test } from 'node:test';
import assert from 'node:assert/strict';
import { semiSpaceSetIn, workerExecArgv } from '../src/cluster/worker-flags.js';

test('workers get the configured semi-space after the primary\'s own flags', () => {
  assert.deepEqual(workerExecArgv(['--enable-source-maps'], undefined, 64), ['--enable-source-maps', '--max-semi-space-size=64']);
  assert.deepEqual(workerExecArgv([], '', 32), ['--max-semi-space-size=32']);
});

test('0 leaves V8\'s default; an operator\'s --max-semi-space-size (flags or NODE_OPTIONS, any spelling) wins', () => {
  assert.deepEqual(workerExecArgv(['--inspect'], undefined, 0), ['--inspect']);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=8'], undefined, 64), ['--max-semi-space-size=8']);
  assert.deepEqual(workerExecArgv([], '--max-old-space-size=512 --max_semi_space_size=16', 64), []);
  assert.equal(semiSpaceSetIn(['--max-semi-space-size', '16'], undefined), true);
  assert.equal(semiSpaceSetIn(['--max-old-space-size=512'], '--min-semi-space-size=4'), false);
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../src/cli.js';
import { startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';
import { TEST_HOOK_SECRET, TEST_TOKEN } from '../../test-support/control-plane.js';

let stack: Stack;
let up: Upstream;
let dir: string;

before(async () => {
  stack = await startStack('cli');
  up = await startUpstream('cli-c1');
  await stack.h.deploy('cli-app', [up.container]);
  dir = await mkdtemp(join(tmpdir(), 'routerctl-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
  await up.close();
  await stack.close();
});

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { CONTROL_PLANE_URL: stack.h.base, CONTROL_PLANE_TOKEN: TEST_TOKEN, ...env }, (t) => out.push(t), (t) => err.push(t));
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('apps list and apps show, for people and for scripts', async () => {
  const human = await cli(['apps', 'list']);
  assert.equal(human.code, 0, human.err);
  assert.match(human.out, /^APP\s+STATUS\s+CONTAINERS\s+HOSTNAMES/m);
  assert.match(human.out, /^cli-app\s+running\s+1\s+cli-app\.localhost/m);
  const json = await cli(['apps', 'list', '--json']);
  assert.deepEqual((JSON.parse(json.out) as { apps: Array<{ app: string }> }).apps.map((a) => a.app), ['cli-app']);

  const show = await cli(['apps', 'show', 'cli-app']);
  assert.equal(show.code, 0, show.err);
  assert.match(show.out, new RegExp(`cli-c1  127\\.0\\.0\\.1:${up.port}`));
  const missing = await cli(['apps', 'show', 'nope']);
  assert.equal(missing.code, 3);
  assert.match(missing.err, /APP_NOT_FOUND/);
  const invalid = await cli(['apps', 'show', '../etc']);
  assert.equal(invalid.code, 1);
  assert.match(invalid.err, /INVALID_FIELD/);
});

test('routes resolve and routers', async () => {
  const route = await cli(['routes', 'resolve', 'CLI-APP.localhost.']);
  assert.equal(route.code, 0, route.err);
  assert.match(route.out, /cli-app\.localhost → cli-app \(running/);
  assert.equal((await cli(['routes', 'resolve', 'unknown.example.org'])).code, 3);

  const routers = await cli(['routers', '--json']);
  assert.equal(routers.code, 0, routers.err);
  const view = JSON.parse(routers.out) as { routers: Array<{ pid: number }> };
  assert.equal(view.routers.length, 1, 'the stack\'s router');
  assert.equal(view.routers[0]!.pid, process.pid);
  assert.match((await cli(['routers'])).out, /^HOST\s+WORKER\s+PID\s+CODE/m);
});

test('events send: from a file, with the token or signed with HOOK_SECRET; refusals keep their code', async () => {
  const file = join(dir, 'scale.json');
  await writeFile(file, JSON.stringify({ id: 'cli-evt-1', app: 'cli-app', type: 'scale', seq: 1000, containers: [up.container, { id: 'cli-c2', host: '127.0.0.2', port: up.port }] }));
  const sent = await cli(['events', 'send', file]);
  assert.equal(sent.code, 0, sent.err);
  assert.equal((JSON.parse((await cli(['apps', 'show', 'cli-app', '--json'])).out) as { containers: unknown[] }).containers.length, 2);

  const signedFile = join(dir, 'signed.json');
  await writeFile(signedFile, JSON.stringify({ id: 'cli-evt-2', app: 'cli-app', type: 'scale', seq: 1001, containers: [up.container] }));
  const signed = await cli(['events', 'send', signedFile, '--json'], { CONTROL_PLANE_TOKEN: '', HOOK_SECRET: TEST_HOOK_SECRET });
  assert.equal(signed.code, 0, signed.err);
  const wrongSecret = await cli(['events', 'send', signedFile], { CONTROL_PLANE_TOKEN: '', HOOK_SECRET: 'not-the-secret-at-all' });
  assert.equal(wrongSecret.code, 1);
  assert.match(wrongSecret.err, /UNAUTHENTICATED|SIGNATURE/i);

  const stale = join(dir, 'stale.json');
  await writeFile(stale, JSON.stringify({ id: 'cli-evt-3', app: 'cli-app', type: 'scale', seq: 1, containers: [up.container] }));
  const refused = await cli(['events', 'send', stale]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /STALE_EVENT/);

  const garbage = join(dir, 'garbage.json');
  await writeFile(garbage, '{not json');
  assert.equal((await cli(['events', 'send', garbage])).code, 2);
  assert.equal((await cli(['events', 'send', join(dir, 'missing.json')])).code, 2);
});

test('usage errors, help, and an unreachable control plane have their exit codes', async () => {
  assert.equal((await cli([])).code, 2);
  const help = await cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /routes resolve/);
  const commandHelp = await cli(['logs', '--help']);
  assert.equal(commandHelp.code, 0);
  assert.match(commandHelp.out, /routerctl logs <app> \[--lines N\] \[--follow\]/);
  assert.equal((await cli(['apps', 'frobnicate'])).code, 2);
  const badOption = await cli(['routers', '--follow']);
  assert.equal(badOption.code, 2);
  assert.match(badOption.err, /--follow does not apply to routers/);
  assert.equal((await cli(['apps', 'show'])).code, 2);
  const down = await cli(['routers'], { CONTROL_PLANE_URL: '127.0.0.1:1' });
  assert.equal(down.code, 4);
  assert.match(down.err, /cannot reach/);
  const noToken = await cli(['routers'], { CONTROL_PLANE_TOKEN: 'wrong-token-0123456789' });
  assert.equal(noToken.code, 1);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AckStatus } from '../../proto/log-batch.js';
import { sourcePath } from '../../proto/source-path.js';
import { LogSender, lines } from '../../test-support/log-sender.js';
import { SHIPPER_TOKEN, startTestShipper } from '../../test-support/log-shipper.js';
import { eventually } from '../../test-support/router.js';
import { freePort } from '../../test-support/router-process.js';

const CLI = sourcePath(import.meta.url, '..', '..', 'dist', 'cli', 'src', 'main.js');
const MAIN = sourcePath(import.meta.url, '..', '..', 'dist', 'log-shipper', 'src', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'logs', ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('routerctl logs (npm run logs): prints the lines; clear errors and exit codes for 401, 404, refused connections and bad usage', async (t) => {
  const s = await startTestShipper();
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  await sender.send(1, [{ app: 'shop', data: lines('shop', 0, 5) }]);
  const env = { LOG_SHIPPER_URL: s.base, LOG_SHIPPER_TOKEN: SHIPPER_TOKEN };

  const ok = await runCli(['shop', '--lines', '2'], env);
  assert.deepEqual([ok.code, ok.stdout, ok.stderr], [0, lines('shop', 3, 2), '']);

  const unauthorized = await runCli(['shop'], { ...env, LOG_SHIPPER_TOKEN: 'nope' });
  assert.equal(unauthorized.code, 1);
  assert.match(unauthorized.stderr, /UNAUTHENTICATED/);

  const notFound = await runCli(['shop'], { ...env, LOG_SHIPPER_URL: `${s.base}/not-the-shipper` });
  assert.equal(notFound.code, 3);
  assert.match(notFound.stderr, /NOT_FOUND/);

  const refused = await runCli(['shop'], { ...env, LOG_SHIPPER_URL: `http://127.0.0.1:${await freePort()}` });
  assert.equal(refused.code, 4);
  assert.match(refused.stderr, /cannot reach http:\/\/127\.0\.0\.1:\d+\/?: ECONNREFUSED/);

  const badApp = await runCli(['Not_An_App'], env);
  assert.equal(badApp.code, 1);
  assert.match(badApp.stderr, /INVALID_APP/);

  for (const args of [[], ['shop', '--lines'], ['shop', '--bogus'], ['a', 'b']]) assert.equal((await runCli(args, env)).code, 2, args.join(' '));
  const noToken = await runCli(['shop'], { LOG_SHIPPER_URL: s.base });
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /LOG_SHIPPER_TOKEN is not set/);

  // --follow: the history, then lines as they arrive, until interrupted.
  const child = spawn(process.execPath, [CLI, 'logs', 'shop', '--lines=1', '--follow'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  t.after(() => child.kill('SIGKILL'));
  await eventually(async () => out === lines('shop', 4, 1), 10_000, 10);
  await sender.send(2, [{ app: 'shop', data: lines('shop', 5, 2) }]);
  await eventually(async () => out === lines('shop', 4, 3), 10_000, 10);
  child.kill('SIGINT');
  await sender.close();
});

test('npm run log-shipper: config errors exit 78; SIGHUP reopens after a rename; SIGTERM finishes in-flight batches and exits 0', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'log-shipper-main-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const noToken = spawn(process.execPath, [MAIN], { env: { PATH: process.env['PATH'] ?? '', LOG_DIR: dir }, stdio: ['ignore', 'ignore', 'pipe'] });
  let noTokenErr = '';
  noToken.stderr.on('data', (c: Buffer) => (noTokenErr += c.toString()));
  const code = await new Promise((r) => noToken.once('exit', r));
  assert.equal(code, 78);
  assert.match(noTokenErr, /LOG_SHIPPER_TOKEN must be set/);

  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env['PATH'] ?? '', LOG_SHIPPER_PORT: String(port), LOG_SHIPPER_TOKEN: SHIPPER_TOKEN, LOG_DIR: dir, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill('SIGKILL'));
  const logged: Array<{ msg: string }> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logged.push(JSON.parse(line) as { msg: string });
    } catch {
      // not ours
    }
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  await eventually(async () => logged.some((l) => l.msg === 'log shipper listening'), 15_000, 20);

  const sender = await LogSender.connect({ port, token: SHIPPER_TOKEN });
  assert.equal((await sender.send(1, [{ app: 'shop', data: lines('shop', 0, 3) }])).status, AckStatus.OK);
  // logrotate: rename, then postrotate's kill -HUP.
  await rename(join(dir, 'shop', 'router.log'), join(dir, 'shop', 'router.log.1'));
  child.kill('SIGHUP');
  await eventually(async () => logged.some((l) => l.msg === 'log files reopened'), 10_000, 20);
  assert.equal((await sender.send(2, [{ app: 'shop', data: lines('shop', 3, 2) }])).status, AckStatus.OK);
  assert.equal(await readFile(join(dir, 'shop', 'router.log.1'), 'utf8'), lines('shop', 0, 3));
  assert.equal(await readFile(join(dir, 'shop', 'router.log'), 'utf8'), lines('shop', 3, 2));

  // SIGTERM with batches in flight: every one of them is answered before the process exits.
  const inflight = Array.from({ length: 20 }, (_, i) => sender.send(3 + i, [{ app: 'shop', data: lines('shop', 5 + i * 10, 10) }]));
  child.kill('SIGTERM');
  const settled = await Promise.allSettled(inflight);
  assert.equal(await exited, 0);
  const acked = settled.filter((r) => r.status === 'fulfilled' && r.value.status === AckStatus.OK).length;
  // What was acknowledged is on disk; nothing more, nothing less (unacked ones are resent by the router).
  const onDisk = (await readFile(join(dir, 'shop', 'router.log'), 'utf8')).split('\n').length - 1;
  assert.equal(onDisk, 2 + acked * 10);
  assert.ok(logged.some((l) => l.msg === 'stopped'));
});

test('a write cut short (the file size limit) is undone exactly, even when the file was renamed away and the shipper still believes the old size', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shipper-fsize-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  // RLIMIT_FSIZE of 8 KiB: a write crossing it lands in part, then EFBIG (Node ignores SIGXFSZ).
  const child = spawn('bash', ['-c', `ulimit -f 8 && exec "${process.execPath}" "${MAIN}"`], {
    env: { PATH: process.env['PATH'] ?? '', LOG_SHIPPER_PORT: String(port), LOG_SHIPPER_TOKEN: SHIPPER_TOKEN, LOG_DIR: dir, LOG_LEVEL: 'info', LOG_FSYNC: 'never' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill('SIGKILL'));
  const logged: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => logged.push(line));
  await eventually(async () => logged.some((l) => l.includes('log shipper listening')), 15_000, 20);
  const sender = await LogSender.connect({ port, token: SHIPPER_TOKEN });
  t.after(() => sender.close());
  const file = join(dir, 'shop', 'router.log');
  const b1 = lines('shop', 0, 30, 70);
  const b2 = lines('shop', 30, 68, 70);
  const b3 = lines('shop', 98, 30, 70);
  const b4 = lines('shop', 128, 5, 70);
  assert.ok(b2.length + b3.length > 8192 && b2.length + b4.length < 8192 && b1.length + b2.length > 8192);
  assert.equal((await sender.send(1, [{ app: 'shop', data: b1 }])).status, AckStatus.OK);
  // logrotate: the file renamed, then SIGHUP; the shipper's idea of the size is now b1's.
  await rename(file, `${file}.1`);
  child.kill('SIGHUP');
  await eventually(async () => logged.some((l) => l.includes('log files reopened')), 10_000, 20);
  assert.equal((await sender.send(2, [{ app: 'shop', data: b2 }])).status, AckStatus.OK);
  assert.equal((await sender.send(3, [{ app: 'shop', data: b3 }])).status, AckStatus.UNAVAILABLE, 'the write that crossed the limit is refused');
  assert.equal(await readFile(file, 'utf8'), b2, 'what landed of it was cut off: no half line');
  assert.equal((await sender.send(4, [{ app: 'shop', data: b4 }])).status, AckStatus.OK);
  assert.equal(await readFile(file, 'utf8'), b2 + b4);
  assert.equal(await readFile(`${file}.1`, 'utf8'), b1);
});

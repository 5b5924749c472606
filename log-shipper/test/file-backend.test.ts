import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AckStatus, type Ack } from '../../proto/log-batch.js';
import { FileBackend } from '../src/backends/file-backend.js';
import { ShipperMetrics } from '../src/metrics.js';
import { LogSender, lines } from '../../test-support/log-sender.js';
import { SHIPPER_TOKEN, startTestShipper } from '../../test-support/log-shipper.js';

const silent = pino({ level: 'silent' });

function numbersOf(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { n: number }).n);
}

test('SIGHUP-style reopen under load while files are renamed away: every line in the renamed or the new file, once', async (t) => {
  const s = await startTestShipper({ LOG_FSYNC: 'never' });
  t.after(() => s.close());
  const apps = ['alpha', 'beta'];
  // Reopened as often but never renamed: old and new handles then point at the same file,
  // so the new one must not write before the old one has finished.
  const steady = 'gamma';
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const BATCHES = 300;
  const K = 20;
  const WINDOW = 8;
  let rotations = 0;
  const acks: Array<Promise<Ack>> = [];
  const sending = (async () => {
    for (let b = 0; b < BATCHES; b++) {
      acks.push(sender.send(b + 1, [...apps, steady].map((app) => ({ app, data: lines(app, b * K, K) }))));
      // Keep a window of batches in flight, like a router.
      if (acks.length >= WINDOW) await acks[acks.length - WINDOW];
    }
  })();
  // logrotate, many times over, while batches are in flight: rename, then "postrotate".
  const rotating = (async () => {
    while (acks.length < BATCHES) {
      await new Promise((r) => setTimeout(r, 5));
      rotations++;
      for (const app of apps) {
        await rename(join(s.dir, app, 'router.log'), join(s.dir, app, `router.log.r${String(rotations).padStart(4, '0')}`)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      await s.shipper.reopen();
    }
  })();
  await sending;
  await rotating;
  const results = await Promise.all(acks);
  assert.ok(results.every((a) => a.status === AckStatus.OK));
  assert.ok(rotations >= 3, `only ${rotations} rotations happened`);
  for (const app of apps) {
    const names = (await readdir(join(s.dir, app))).filter((n) => n.startsWith('router.log.r')).sort();
    assert.ok(names.length >= 2, `${app}: ${names.length} renamed files`);
    let all: number[] = [];
    for (const name of [...names, 'router.log']) all = all.concat(numbersOf(await readFile(join(s.dir, app, name), 'utf8').catch(() => '')));
    // In order across the files, each line exactly once.
    assert.deepEqual(all, Array.from({ length: BATCHES * K }, (_, i) => i), app);
  }
  assert.deepEqual(numbersOf(await s.read(steady)), Array.from({ length: BATCHES * K }, (_, i) => i), steady);
  assert.ok((await s.metric('log_shipper_file_reopens_total')) >= 3);
  await sender.close();
});

test('size rotation keeps LOG_ROTATE_KEEP files, each under LOG_ROTATE_BYTES, holding the newest lines', async (t) => {
  const s = await startTestShipper({ LOG_ROTATE_BYTES: '2000', LOG_ROTATE_KEEP: '2' });
  t.after(() => s.close());
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const K = 10; // ~21 bytes a line: ~210 bytes a batch
  for (let b = 0; b < 40; b++) assert.equal((await sender.send(b + 1, [{ app: 'shop', data: lines('shop', b * K, K) }])).status, AckStatus.OK);
  const names = (await readdir(join(s.dir, 'shop'))).sort();
  assert.deepEqual(names, ['router.log', 'router.log.1', 'router.log.2']);
  for (const name of names) assert.ok((await stat(join(s.dir, 'shop', name))).size <= 2000, name);
  const kept = [...numbersOf(await s.read('shop', '.2')), ...numbersOf(await s.read('shop', '.1')), ...numbersOf(await s.read('shop'))];
  // The newest lines, contiguous, ending with the last one sent.
  assert.equal(kept.at(-1), 40 * K - 1);
  assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => 40 * K - kept.length + i));
  assert.ok((await s.metric('log_shipper_file_rotations_total')) >= 3);
  await sender.close();
});

test('LOG_MAX_OPEN_FILES=3 with 10 apps: every line written, never more than 3 files open', async (t) => {
  const s = await startTestShipper({ LOG_MAX_OPEN_FILES: '3' });
  t.after(() => s.close());
  const apps = Array.from({ length: 10 }, (_, i) => `app-${i}`);
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  const K = 5;
  const BATCHES = 30;
  const acks: Array<Promise<Ack>> = [];
  for (let b = 0; b < BATCHES; b++) {
    // Each batch names the apps in another order, so the LRU keeps evicting files with writes pending.
    const order = apps.map((_, i) => apps[(i * 3 + b) % apps.length]!);
    acks.push(sender.send(b + 1, order.map((app) => ({ app, data: lines(app, b * K, K) }))));
  }
  assert.ok((await Promise.all(acks)).every((a) => a.status === AckStatus.OK));
  for (const app of apps) assert.deepEqual(numbersOf(await s.read(app)), Array.from({ length: BATCHES * K }, (_, i) => i), app);
  const backend = s.shipper.backends[0] as FileBackend;
  assert.ok(backend.peakOpenFiles <= 3, `peak ${backend.peakOpenFiles}`);
  assert.ok(backend.peakOpenFiles >= 1);
  assert.ok((await s.metric('log_shipper_open_files')) <= 3);
  await sender.close();
});

test('the backend itself refuses a path outside LOG_DIR: bad names, and an app directory that is a symlink elsewhere', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'file-backend-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const logDir = join(root, 'logs');
  const outside = join(root, 'outside');
  await mkdir(outside);
  const metrics = new ShipperMetrics();
  const backend = await FileBackend.create({ logDir, maxOpenFiles: 4, rotateBytes: 0, rotateKeep: 1, fsync: 'never', fsyncIntervalMs: 1000 }, metrics, silent);
  t.after(() => backend.close());
  const data = Buffer.from('{"a":1}\n');
  for (const app of ['../outside', '..', 'a/../../outside', '', 'UPPER', '_unrouted']) {
    await assert.rejects(backend.write([{ app, data, lines: 1 }]), /not an app name/, app);
  }
  // A batch with one bad app is refused whole: nothing queued for the good one.
  await assert.rejects(backend.write([{ app: 'good', data, lines: 1 }, { app: '../x', data, lines: 1 }]));
  await symlink(outside, join(logDir, 'planted'));
  await assert.rejects(backend.write([{ app: 'planted', data, lines: 1 }]), /outside LOG_DIR/);
  assert.deepEqual(await readdir(outside), []);
  assert.deepEqual((await readdir(logDir)).sort(), ['planted']);
  // The unrouted section has its own directory.
  await backend.write([{ app: '-', data, lines: 1 }]);
  assert.equal(await readFile(join(logDir, '_unrouted', 'router.log'), 'utf8'), '{"a":1}\n');
  // Its open file is no way in for the name of its directory.
  await assert.rejects(backend.write([{ app: '_unrouted', data, lines: 1 }]), /not an app name/);
});

test('LOG_FSYNC=always: each write is followed by an fdatasync before it resolves; interval: synced in the background', async (t) => {
  const always = await startTestShipper({ LOG_FSYNC: 'always' });
  t.after(() => always.close());
  const sender = await LogSender.connect({ port: always.port, token: SHIPPER_TOKEN });
  for (let b = 0; b < 5; b++) await sender.send(b + 1, [{ app: 'shop', data: lines('shop', b, 1) }, { app: 'blog', data: lines('blog', b, 1) }]);
  assert.equal(await always.metric('log_shipper_file_fsyncs_total'), 10);
  assert.equal(await always.metric('log_shipper_file_writes_total'), 10);
  await sender.close();

  const interval = await startTestShipper({ LOG_FSYNC: 'interval', LOG_FSYNC_INTERVAL: '20' });
  t.after(() => interval.close());
  const s2 = await LogSender.connect({ port: interval.port, token: SHIPPER_TOKEN });
  await s2.send(1, [{ app: 'shop', data: lines('shop', 0, 1) }]);
  const { eventually } = await import('../../test-support/router.js');
  await eventually(async () => (await interval.metric('log_shipper_file_fsyncs_total')) >= 1, 5000, 10);
  await s2.close();
  assert.equal(await interval.metric('log_shipper_filesystem_syncs_total'), 0, 'one dirty file: an fdatasync, not a syncfs');

  // Files evicted with unsynced writes close at once; the next tick syncs them with one syncfs.
  const churn = await startTestShipper({ LOG_FSYNC: 'interval', LOG_FSYNC_INTERVAL: '20', LOG_MAX_OPEN_FILES: '2' });
  t.after(() => churn.close());
  const s3 = await LogSender.connect({ port: churn.port, token: SHIPPER_TOKEN });
  const apps = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
  for (let b = 0; b < 3; b++) await s3.send(b + 1, apps.map((app) => ({ app, data: lines(app, b, 2) })));
  await eventually(async () => (await churn.metric('log_shipper_filesystem_syncs_total')) >= 1, 5000, 10);
  for (const app of apps) assert.deepEqual(numbersOf(await churn.read(app)), [0, 1, 1, 2, 2, 3]);
  await s3.close();
});

test('a file left ending in a torn line (a shipper killed mid-write) is cut back to its last whole line before the first append', async (t) => {
  const logDir = await mkdtemp(join(tmpdir(), 'torn-tail-'));
  t.after(() => rm(logDir, { recursive: true, force: true }));
  const whole = lines('shop', 0, 2);
  await mkdir(join(logDir, 'shop'), { recursive: true });
  await writeFile(join(logDir, 'shop', 'router.log'), `${whole}{"n":2,"app":"sh`);
  await mkdir(join(logDir, 'blog'), { recursive: true });
  // No newline at all within the last valid line's length: cut the unterminated run whole.
  await writeFile(join(logDir, 'blog', 'router.log'), 'x'.repeat(70 * 1024));
  const backend = await FileBackend.create({ logDir, maxOpenFiles: 4, rotateBytes: 0, rotateKeep: 1, fsync: 'never', fsyncIntervalMs: 1000 }, new ShipperMetrics(), silent);
  t.after(() => backend.close());
  const resent = lines('shop', 2, 2);
  await backend.write([
    { app: 'shop', data: Buffer.from(resent), lines: 2 },
    { app: 'blog', data: Buffer.from(lines('blog', 0, 1)), lines: 1 },
  ]);
  assert.equal(await readFile(join(logDir, 'shop', 'router.log'), 'utf8'), whole + resent);
  assert.deepEqual(numbersOf(await readFile(join(logDir, 'blog', 'router.log'), 'utf8').then((s) => s.slice(s.lastIndexOf('x') + 1))), [0]);
  assert.equal((await stat(join(logDir, 'blog', 'router.log'))).size, 70 * 1024 - (64 * 1024 + 1) + Buffer.byteLength(lines('blog', 0, 1)));
  // A file that ends well is left alone, and the check is made once per app: later writes append.
  await backend.write([{ app: 'shop', data: Buffer.from(lines('shop', 4, 1)), lines: 1 }]);
  assert.deepEqual(numbersOf(await readFile(join(logDir, 'shop', 'router.log'), 'utf8')), [0, 1, 2, 3, 4]);
});

test("an app's directory removed while its file is closed is made again at the next write", async (t) => {
  const logDir = await mkdtemp(join(tmpdir(), 'dir-gone-'));
  t.after(() => rm(logDir, { recursive: true, force: true }));
  const backend = await FileBackend.create({ logDir, maxOpenFiles: 4, rotateBytes: 0, rotateKeep: 1, fsync: 'never', fsyncIntervalMs: 1000 }, new ShipperMetrics(), silent);
  t.after(() => backend.close());
  await backend.write([{ app: 'shop', data: Buffer.from(lines('shop', 0, 1)), lines: 1 }]);
  await backend.reopen();
  await rm(join(logDir, 'shop'), { recursive: true });
  await backend.write([{ app: 'shop', data: Buffer.from(lines('shop', 1, 1)), lines: 1 }]);
  assert.deepEqual(numbersOf(await readFile(join(logDir, 'shop', 'router.log'), 'utf8')), [1]);
});

test('synced log data leaves the page cache (LOG_FSYNC=interval, both sync paths, and always); LOG_FSYNC=never keeps it', async (t) => {
  const { execFile } = await import('node:child_process');
  const { eventually } = await import('../../test-support/router.js');
  /** Bytes of the file in the page cache, by util-linux's fincore (mincore(2)). */
  const resident = (file: string): Promise<number> =>
    new Promise((resolve, reject) =>
      execFile('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], (err, stdout) => (err ? reject(err) : resolve(Number(stdout.trim())))),
    );
  // ~40 KB per app and batch (a batch stays under 1 MiB with 20 apps): 10 pages a drop must let go of.
  const data = (app: string, b: number): string => lines(app, b * 200, 200, 170);
  const sendTo = async (port: number, apps: string[], batches: number): Promise<void> => {
    const sender = await LogSender.connect({ port, token: SHIPPER_TOKEN });
    for (let b = 0; b < batches; b++) assert.equal((await sender.send(b + 1, apps.map((app) => ({ app, data: data(app, b) })))).status, AckStatus.OK);
    await sender.close();
  };
  const expectDropped = async (s: Awaited<ReturnType<typeof startTestShipper>>, apps: string[]): Promise<void> => {
    for (const app of apps) {
      const file = join(s.dir, app, 'router.log');
      const size = (await stat(file)).size;
      assert.ok(size > 35_000, `${app}: ${size} bytes written`);
      // Every whole synced page goes; the page an append is filling stays (dropping it would
      // make the next append read it back from disk).
      assert.notEqual(size % 4096, 0);
      await eventually(async () => (await resident(file)) === 4096, 20_000, 20);
    }
  };

  const never = await startTestShipper({ LOG_FSYNC: 'never' });
  t.after(() => never.close());
  await sendTo(never.port, ['kept'], 1);
  const keptFile = join(never.dir, 'kept', 'router.log');
  assert.ok((await resident(keptFile)) >= (await stat(keptFile)).size - 4096, 'never: written pages stay cached');
  assert.equal(await never.metric('log_shipper_page_cache_drops_total'), 0);

  const one = await startTestShipper({ LOG_FSYNC: 'interval', LOG_FSYNC_INTERVAL: '20' });
  t.after(() => one.close());
  await sendTo(one.port, ['solo'], 2);
  await expectDropped(one, ['solo']);
  assert.equal(await one.metric('log_shipper_filesystem_syncs_total'), 0, 'one file: the fdatasync path');
  assert.ok((await one.metric('log_shipper_page_cache_drops_total')) >= 1);

  const many = await startTestShipper({ LOG_FSYNC: 'interval', LOG_FSYNC_INTERVAL: '20' });
  t.after(() => many.close());
  const apps = Array.from({ length: 20 }, (_, i) => `app${i}`);
  await sendTo(many.port, apps, 1);
  await eventually(async () => (await many.metric('log_shipper_filesystem_syncs_total')) >= 1, 20_000, 10);
  await expectDropped(many, apps);

  // Files evicted before their sync (LOG_MAX_OPEN_FILES=1, two apps in turn: every write
  // reopens) leave their pages at the next open after a syncfs covered them.
  const churn = await startTestShipper({ LOG_FSYNC: 'interval', LOG_FSYNC_INTERVAL: '200', LOG_MAX_OPEN_FILES: '1' });
  t.after(() => churn.close());
  const churnSender = await LogSender.connect({ port: churn.port, token: SHIPPER_TOKEN });
  for (let round = 0; round < 3; round++) {
    const syncCalls = async (): Promise<number> => (await churn.metric('log_shipper_filesystem_syncs_total')) + (await churn.metric('log_shipper_file_fsyncs_total'));
    const before = await syncCalls();
    // Back to back, well within one interval: 'odd' evicts 'even' unsynced (and 'even' reopens
    // after the previous round's syncfs); the next tick's syncfs covers the evicted file. (On a
    // loaded machine a tick may fall between the two and fdatasync 'even' while open: its pages
    // go then, by the other path.)
    for (const [k, app] of ['even', 'odd'].entries()) assert.equal((await churnSender.send(round * 2 + k + 1, [{ app, data: data(app, round * 2 + k) }])).status, AckStatus.OK);
    await eventually(async () => (await syncCalls()) > before, 20_000, 5);
  }
  await churnSender.close();
  const evenFile = join(churn.dir, 'even', 'router.log');
  const evenSize = (await stat(evenFile)).size;
  const lastBatch = Buffer.byteLength(data('even', 4));
  // Batches 0 and 2 were synced while closed and dropped at the reopens; batch 4's pages were never reopened.
  const cached = await resident(evenFile);
  assert.ok(cached <= lastBatch + 8192, `${cached} of ${evenSize} bytes still cached`);
  assert.equal(evenSize, [0, 2, 4].reduce((n, b) => n + Buffer.byteLength(data('even', b)), 0));

  const always = await startTestShipper({ LOG_FSYNC: 'always' });
  t.after(() => always.close());
  await sendTo(always.port, ['strict'], 2);
  await expectDropped(always, ['strict']);
  assert.equal(await always.metric('log_shipper_page_cache_drops_total'), 2, 'one drop per synced write');
});

test("lastLines: continues into router.log.1 only when the current file was read whole, and within one byte budget", async (t) => {
  const { MAX_HISTORY_BYTES } = await import('../src/tail/read-last-lines.js');
  const logDir = await mkdtemp(join(tmpdir(), 'last-lines-'));
  t.after(() => rm(logDir, { recursive: true, force: true }));
  const backend = await FileBackend.create({ logDir, maxOpenFiles: 4, rotateBytes: 0, rotateKeep: 1, fsync: 'never', fsyncIntervalMs: 1000 }, new ShipperMetrics(), silent);
  t.after(() => backend.close());
  await mkdir(join(logDir, 'shop'));
  const file = join(logDir, 'shop', 'router.log');
  await writeFile(`${file}.1`, lines('old', 0, 100, 60));
  // A current file bigger than the whole budget: its history stops inside it, never jumps to .1.
  const big = lines('cur', 0, Math.ceil((MAX_HISTORY_BYTES + 1_000_000) / 90), 60);
  await writeFile(file, big);
  const capped = (await backend.lastLines('shop', 1_000_000)).toString();
  assert.ok(capped.length <= MAX_HISTORY_BYTES, `${capped.length} bytes`);
  assert.ok(!capped.includes('"app":"old"'), 'no line of router.log.1 after a gap');
  assert.ok(big.endsWith(capped) && capped.startsWith('{'), 'the newest whole lines of the current file');
  // A small current file: the rest of the history from .1, in order.
  await writeFile(file, lines('cur', 0, 10, 60));
  assert.equal((await backend.lastLines('shop', 25)).toString(), lines('old', 85, 15, 60) + lines('cur', 0, 10, 60));
  assert.equal((await backend.lastLines('shop', 10)).toString(), lines('cur', 0, 10, 60));
  // No current file yet (rotated, nothing written since): all from .1.
  await rm(file);
  assert.equal((await backend.lastLines('shop', 3)).toString(), lines('old', 97, 3, 60));
});

test('a FIFO planted as an app\'s router.log fails that app\'s writes at once; the other apps are written', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const s = await startTestShipper({ LOG_FSYNC: 'never' });
  t.after(() => s.close());
  await mkdir(join(s.dir, 'trap'));
  execFileSync('mkfifo', [join(s.dir, 'trap', 'router.log')]);
  const sender = await LogSender.connect({ port: s.port, token: SHIPPER_TOKEN });
  t.after(() => sender.close());
  // Without O_NONBLOCK the open would wait for a reader forever, on the thread every append goes through.
  const answer = await Promise.race([sender.send(1, [{ app: 'trap', data: lines('trap', 0, 1) }]), new Promise<null>((r) => setTimeout(() => r(null), 5000).unref())]);
  assert.notEqual(answer, null, 'no answer within 5 s: the open blocked');
  assert.equal(answer!.status, AckStatus.UNAVAILABLE);
  assert.equal((await sender.send(2, [{ app: 'shop', data: lines('shop', 0, 2) }])).status, AckStatus.OK);
  assert.deepEqual(numbersOf(await s.read('shop')), [0, 1]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppendError, AppendWriter, FileOpError } from '../src/backends/append-writer.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'append-writer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('appends from many turns reach each file whole and in order, several files interleaved', async (t) => {
  const dir = tempDir(t);
  const writer = new AppendWriter();
  t.after(() => writer.close());
  const files = ['a', 'b', 'c'].map((name) => ({ name, fd: openSync(path.join(dir, name), 'a'), expected: [] as string[] }));
  t.after(() => files.forEach((f) => closeSync(f.fd)));
  // Like AppFile: one append in flight per file, the next one queued behind it.
  await Promise.all(
    files.map(async (f) => {
      for (let i = 0; i < 200; i++) {
        const parts = [`${f.name}-${i}-one\n`, `${f.name}-${i}-two\n`];
        f.expected.push(...parts);
        const written = await writer.append(f.fd, parts.map((p) => Buffer.from(p)));
        assert.equal(written, parts.join('').length);
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
    }),
  );
  for (const f of files) assert.equal(readFileSync(path.join(dir, f.name), 'utf8'), f.expected.join(''));
});

test('appends larger than the reused buffer are written whole', async (t) => {
  const dir = tempDir(t);
  const writer = new AppendWriter();
  t.after(() => writer.close());
  const fd = openSync(path.join(dir, 'big'), 'a');
  t.after(() => closeSync(fd));
  const small = Buffer.alloc(1000, 'a');
  const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'b');
  await writer.append(fd, [small]);
  assert.equal(await writer.append(fd, [big, small]), big.length + small.length);
  const content = readFileSync(path.join(dir, 'big'));
  assert.equal(content.length, 2 * small.length + big.length);
  assert.ok(content.subarray(0, 1000).every((c) => c === 0x61));
  assert.ok(content.subarray(1000, 1000 + big.length).every((c) => c === 0x62));
});

test('a failing append rejects with its errno code; the others of the same hand-off are written', async (t) => {
  const dir = tempDir(t);
  const writer = new AppendWriter();
  t.after(() => writer.close());
  const good = openSync(path.join(dir, 'good'), 'a');
  t.after(() => closeSync(good));
  const readOnly = openSync(path.join(dir, 'good'), 'r');
  t.after(() => closeSync(readOnly));
  const results = await Promise.allSettled([
    writer.append(good, [Buffer.from('first\n')]),
    writer.append(readOnly, [Buffer.from('refused\n')]),
    writer.append(good, [Buffer.from('third\n')]),
  ]);
  assert.equal(results[0].status, 'fulfilled');
  assert.equal(results[2].status, 'fulfilled');
  assert.equal(results[1].status, 'rejected');
  const err = (results[1] as PromiseRejectedResult).reason as AppendError;
  assert.ok(err instanceof AppendError);
  assert.equal(err.code, 'EBADF');
  assert.equal(err.written, 0);
  assert.equal(readFileSync(path.join(dir, 'good'), 'utf8'), 'first\nthird\n');
  // The writer keeps working after a failure.
  await writer.append(good, [Buffer.from('after\n')]);
  assert.equal(readFileSync(path.join(dir, 'good'), 'utf8'), 'first\nthird\nafter\n');
});

test('after close, appends are refused', async () => {
  const writer = new AppendWriter();
  await writer.close();
  await assert.rejects(writer.append(1, [Buffer.from('x')]), /closed/);
});

test('opens and closes run on the writer thread in line with the appends, and fail with the errno code', async (t) => {
  const dir = tempDir(t);
  const writer = new AppendWriter();
  t.after(() => writer.close());
  // Queued in one turn: the open, an append on a file already open, and a failing open travel together.
  const other = openSync(path.join(dir, 'other'), 'a');
  t.after(() => closeSync(other));
  const [fd, , missing] = await Promise.allSettled([
    writer.openFile(path.join(dir, 'log')),
    writer.append(other, [Buffer.from('x\n')]),
    writer.openFile(path.join(dir, 'no-such-dir', 'log')),
  ]);
  assert.equal(fd.status, 'fulfilled');
  const opened = (fd as PromiseFulfilledResult<number>).value;
  assert.equal(fstatSync(opened).mode & 0o777, 0o640);
  assert.equal(missing.status, 'rejected');
  const err = (missing as PromiseRejectedResult).reason as FileOpError;
  assert.ok(err instanceof FileOpError);
  assert.equal(err.code, 'ENOENT');
  // Appends queued before the close land before it; the fd is closed after.
  const appended = writer.append(opened, [Buffer.from('one\n')]);
  const closed = writer.closeFile(opened);
  assert.equal(await appended, 4);
  await closed;
  assert.throws(() => fstatSync(opened), /EBADF/);
  assert.equal(readFileSync(path.join(dir, 'log'), 'utf8'), 'one\n');
  await assert.rejects(writer.closeFile(opened), (e: FileOpError) => e instanceof FileOpError && e.code === 'EBADF');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SERVICES } from '../services.js';
import { NOT_MERGED_ENTRIES, readRepoFile, repoPath } from './deploy-files.js';

/** Source trees the three services and routerctl run from (tests, benchmarks and scripts stay out of it). */
const RUNTIME_TREES = ['proto', 'control-plane/src', 'data-plane/src', 'log-shipper/src', 'cli/src'];

function tsFiles(dir: string): string[] {
  if (!existsSync(repoPath(dir))) return [];
  return readdirSync(repoPath(dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === 'test' ? [] : tsFiles(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

/** Files the compiled code reads from the source tree: every `sourcePath(import.meta.url, '...', ...)`, resolved. */
function sourceTreeReads(): string[] {
  const out: string[] = [];
  for (const file of RUNTIME_TREES.flatMap(tsFiles)) {
    const text = readFileSync(repoPath(file), 'utf8');
    for (const call of text.matchAll(/sourcePath\(\s*import\.meta\.url((?:\s*,\s*[^,)]+)*)\s*\)/g)) {
      const args = call[1]!.split(',').map((a) => a.trim()).filter((a) => a !== '');
      const segments = args.map((a) => /^'([^']*)'$/.exec(a)?.[1]);
      assert.ok(segments.every((s) => s !== undefined), `${file}: sourcePath(${args.join(', ')}) is not made of string literals: this test cannot tell which file it reads`);
      out.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), ...(segments as string[]))));
    }
  }
  return out;
}

interface Stage {
  name: string;
  lines: string[];
}

function stages(dockerfile: string): Stage[] {
  const out: Stage[] = [];
  // Joins continuation lines, drops comments.
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of lines) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) out.push({ name: from[1] ?? String(out.length), lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

const dockerfile = stages(readRepoFile('deploy', 'Dockerfile'));
const runtime = dockerfile.at(-1)!;
const build = dockerfile.find((s) => s.name === 'build')!;
const ignored = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));

/** The runtime image's copies from the build stage, as paths relative to both WORKDIRs. */
function runtimeCopies(): Array<{ from: string; to: string }> {
  const workdir = (s: Stage) => s.lines.filter((l) => /^WORKDIR\s/i.test(l)).at(-1)?.split(/\s+/)[1] ?? '/';
  const buildDir = workdir(build);
  const runDir = workdir(runtime);
  return runtime.lines
    .filter((l) => /^COPY\s+--from=build\s/i.test(l))
    .map((l) => {
      const parts = l.split(/\s+/).slice(2);
      assert.equal(parts.length, 2, `one source per COPY: ${l}`);
      const rel = (p: string, dir: string) => path.posix.relative(dir, path.posix.resolve(dir, p)) + (p.endsWith('/') ? '/' : '');
      return { from: rel(parts[0]!, buildDir), to: rel(parts[1]!, runDir) };
    });
}

test('the image copies every file the compiled code reads from the source tree, to the same place', () => {
  const needed = sourceTreeReads();
  assert.ok(needed.includes('proto/control_plane.proto') && needed.some((f) => f.endsWith('.lua')), `found the .proto and the Lua scripts: ${needed.join(', ')}`);
  const copies = runtimeCopies();
  for (const file of needed) {
    assert.ok(existsSync(repoPath(file)), `${file} exists`);
    assert.ok(!ignored.some((p) => file === p || file.startsWith(`${p.replace(/\/$/, '')}/`)), `${file} is not excluded by .dockerignore`);
    const copy = copies.find((c) => c.to === file || (c.to.endsWith('/') && file.startsWith(c.to)));
    assert.ok(copy, `deploy/Dockerfile copies ${file} into the runtime image`);
    assert.equal(copy.from + file.slice(copy.to.length), file, `${file} lands at the same relative path`);
  }
});

test('the image: production dependencies only, the compiled tree and its build info, a non-root user', () => {
  assert.ok(build.lines.some((l) => /^RUN\s+npm ci\b/.test(l) && !l.includes('--omit=dev')), 'the build stage installs dev dependencies (tsc)');
  assert.ok(build.lines.some((l) => /\btsc -p tsconfig\.json\b/.test(l) && l.includes('node dist/scripts/build-info.js')), 'the build stage compiles and writes dist/build-info.json');
  assert.ok(runtime.lines.some((l) => /^COPY\s+package\.json\s+package-lock\.json\s/.test(l)), 'package.json ("type": "module") is in the runtime image');
  assert.ok(runtime.lines.some((l) => /^RUN\s+npm ci\s.*--omit=dev/.test(l)), 'the runtime stage installs production dependencies only');
  assert.ok(runtimeCopies().some((c) => c.from === 'dist/' && c.to === 'dist/'), 'the compiled tree');
  const user = runtime.lines.filter((l) => /^USER\s/i.test(l)).at(-1)?.split(/\s+/)[1];
  assert.ok(user !== undefined && user !== 'root' && user !== '0', 'the runtime user is not root');
  for (const p of ['node_modules', 'dist', '.git']) assert.ok(ignored.includes(p), `.dockerignore leaves ${p} out of the context`);
  // Each service's entry point and the healthcheck script are compiled from a source file the context holds.
  for (const entry of [...SERVICES.map((s) => s.entry), 'dist/deploy/healthcheck.js']) {
    const source = entry.replace(/^dist\//, '').replace(/\.js$/, '.ts');
    assert.equal(existsSync(repoPath(source)), !NOT_MERGED_ENTRIES.has(entry), `${source} is compiled into ${entry}${NOT_MERGED_ENTRIES.has(entry) ? ' (exists now: remove it from NOT_MERGED_ENTRIES)' : ''}`);
  }
});

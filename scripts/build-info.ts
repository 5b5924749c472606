/**
 * Run after tsc (`npm run build`): writes dist/build-info.json — the package version and
 * the commit the code was built from — so a router can say which code it runs (fleet view,
 * logs) and ops can tell an upgraded worker from an old one.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { sourcePath } from '../proto/source-path.js';

const root = sourcePath(import.meta.url, '..');
const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string };
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  if (dirty !== '') commit += '-dirty';
} catch {
  // Not a git checkout (a package, a container image): the version alone.
}
writeFileSync(`${root}/dist/build-info.json`, `${JSON.stringify({ version: pkg.version, commit, built_at: new Date().toISOString() })}\n`);

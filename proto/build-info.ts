/**
 * Which code this process runs, from dist/build-info.json (written by `npm run build`).
 * Read once per process: a worker started after an upgrade reads the new file.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  commit: string;
  built_at: string;
}

let cached: BuildInfo | null = null;

export function buildInfo(): BuildInfo {
  if (cached !== null) return cached;
  try {
    // Next to the compiled tree (dist/proto/ → dist/), not in the source tree.
    cached = JSON.parse(readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'build-info.json'), 'utf8')) as BuildInfo;
  } catch {
    cached = { version: 'unknown', commit: 'unknown', built_at: 'unknown' };
  }
  return cached;
}

/** `0.1.0+abc123def456`: what the fleet view shows. */
export function codeVersion(): string {
  const info = buildInfo();
  return info.commit === 'unknown' ? info.version : `${info.version}+${info.commit}`;
}

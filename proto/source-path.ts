/**
 * Non-TypeScript files (Lua scripts, .proto definitions) stay in the source tree, where
 * their TypeScript neighbours are written, while the compiled code runs from dist/ (which
 * mirrors that tree): this maps a module's location back to the source tree so both
 * `node dist/...` and a run from source find the same file.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `segments` resolved against the source directory of the module at `metaUrl` (pass `import.meta.url`). */
export function sourcePath(metaUrl: string, ...segments: string[]): string {
  // The trailing separator lets a module directly under dist/ map back to the root too.
  const here = path.dirname(fileURLToPath(metaUrl)) + path.sep;
  const marker = `${path.sep}dist${path.sep}`;
  // The last occurrence: the checkout itself may live under some other "dist" directory.
  const i = here.lastIndexOf(marker);
  const dir = i < 0 ? here : path.join(here.slice(0, i), here.slice(i + marker.length));
  return path.join(dir, ...segments);
}

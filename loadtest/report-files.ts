/**
 * Where every benchmark leaves its results: `loadtest/reports/<kind>-<start time>.md` (the
 * report, also printed) and `.json` (the raw figures the charts are drawn from). The runner
 * (`npm run loadtest`) finds them by that name.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sourcePath } from '../proto/source-path.js';

/** Writes both files and returns the report's path, relative to the repository. */
export async function writeReport(kind: string, startedAt: Date, markdown: string, figures: unknown): Promise<string> {
  const dir = sourcePath(import.meta.url, 'reports');
  await mkdir(dir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  await writeFile(path.join(dir, `${kind}-${stamp}.md`), markdown);
  await writeFile(path.join(dir, `${kind}-${stamp}.json`), JSON.stringify(figures, null, 2));
  return `loadtest/reports/${kind}-${stamp}.md`;
}

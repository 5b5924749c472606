/**
 * `npm run gen:deploy-env`: writes deploy/systemd/env/<service>.env from the variable
 * declarations, so the files ops install can never drift from the code (deploy/test checks
 * the committed ones are what this writes). `--check` only compares and exits 1 on a difference.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { renderEnvFile } from '../deploy/env-file.js';
import { SERVICES } from '../deploy/services.js';
import { sourcePath } from '../proto/source-path.js';

const check = process.argv.includes('--check');
let stale = 0;
for (const s of SERVICES) {
  const file = sourcePath(import.meta.url, '..', 'deploy', 'systemd', 'env', `${s.name}.env`);
  const text = renderEnvFile(s);
  const current = await readFile(file, 'utf8').catch(() => null);
  if (current === text) continue;
  if (check) {
    console.error(`${file} is out of date: run npm run gen:deploy-env`);
    stale++;
  } else {
    await writeFile(file, text);
    console.log(`wrote ${file}`);
  }
}
process.exitCode = stale === 0 ? 0 : 1;

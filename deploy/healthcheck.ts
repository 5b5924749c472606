/**
 * `node dist/deploy/healthcheck.js <url>`: exit 0 when the URL answers 2xx within two
 * seconds, 1 otherwise (Docker reserves 2). Container healthchecks use it because the runtime
 * image (node slim) has no curl or wget.
 */
const TIMEOUT_MS = 2000;

const url = process.argv[2];
if (url === undefined || !/^https?:\/\/[^/]/.test(url)) {
  process.stderr.write('usage: node dist/deploy/healthcheck.js http://127.0.0.1:<port>/<path>\n');
  process.exitCode = 1;
} else {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), headers: { accept: 'application/json' } });
    const line = `${url}: ${res.status} ${(await res.text()).slice(0, 300)}\n`;
    (res.ok ? process.stdout : process.stderr).write(line);
    process.exitCode = res.ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`${url}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

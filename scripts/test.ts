/**
 * `npm test`: every compiled *.test.js under dist/ (or the files given after `--`) through
 * node:test, against a real redis-server started here unless REDIS_URL points at one.
 * Extra arguments starting with `-` go to `node --test` as they are
 * (`npm test -- --test-name-pattern=deploy`).
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { availableParallelism, constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { RedisServerMissingError, startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js';

const DEFAULT_TIMEOUT_MS = 15 * 60_000;
const KILL_GRACE_MS = 5_000;

async function findTestFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') found.push(...(await findTestFiles(path)));
    } else if (entry.name.endsWith('.test.js')) {
      found.push(path);
    }
  }
  return found;
}

function timeoutMs(): number {
  const raw = process.env['TEST_TIMEOUT_MS'];
  if (raw === undefined || raw === '') return DEFAULT_TIMEOUT_MS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) {
    console.error(`TEST_TIMEOUT_MS must be a positive integer (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return n;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal === null ? undefined : osConstants.signals[signal];
  return number === undefined ? 1 : 128 + number;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const nodeFlags = args.filter((a) => a.startsWith('-'));
  const given = args.filter((a) => !a.startsWith('-'));
  // Node 20's --test does not expand globs, so the runner names every file itself.
  const files = given.length > 0 ? given : (await findTestFiles('dist').catch(() => [])).sort();
  if (files.length === 0) {
    console.error('no *.test.js files under dist/: did the build run? (`npm test` builds first)');
    return 1;
  }
  const limit = timeoutMs();

  let redis: EmbeddedRedis | undefined;
  const env = { ...process.env };
  if (env['REDIS_URL'] === undefined || env['REDIS_URL'] === '') {
    try {
      // Own process group: on Ctrl-C the tests are stopped first, then Redis, so no test
      // reports a lost connection while being torn down.
      redis = await startEmbeddedRedis({ ownProcessGroup: true });
    } catch (err) {
      console.error(err instanceof RedisServerMissingError ? err.message : `could not start redis-server: ${(err as Error).message}`);
      return 1;
    }
    env['REDIS_URL'] = redis.url;
    console.error(`tests use an embedded redis-server at ${redis.url} (pid ${redis.pid})`);
  } else {
    console.error('tests use the Redis at REDIS_URL');
  }

  try {
    return await runTests(files, nodeFlags, env, limit);
  } finally {
    await redis?.stop();
  }
}

function runTests(files: string[], nodeFlags: string[], env: NodeJS.ProcessEnv, limit: number): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--test', `--test-concurrency=${availableParallelism()}`, '--test-reporter=spec', '--test-reporter-destination=stdout', ...nodeFlags, ...files],
    // Its own process group, so a timeout or Ctrl-C takes down every test file process and
    // whatever servers they spawned, not just the runner.
    { stdio: 'inherit', env, detached: true },
  );

  let stopReason: string | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const stopGroup = (reason: string): void => {
    if (stopReason !== undefined) return;
    stopReason = reason;
    console.error(`\n${reason}: stopping the tests`);
    signalGroup('SIGTERM');
    killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
  };
  const signalGroup = (signal: NodeJS.Signals): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is already gone
    }
  };

  const hardTimeout = setTimeout(() => stopGroup(`the test run exceeded ${limit} ms (TEST_TIMEOUT_MS)`), limit);
  const onSignal = (signal: NodeJS.Signals): void => stopGroup(`received ${signal}`);
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);

  return new Promise((resolveRun) => {
    const finish = (code: number): void => {
      clearTimeout(hardTimeout);
      clearTimeout(killTimer);
      for (const s of signals) process.removeListener(s, onSignal);
      resolveRun(code);
    };
    child.once('error', (err) => {
      console.error(`could not run node --test: ${err.message}`);
      finish(1);
    });
    child.once('exit', (code, signal) => {
      // A test file may have left processes in the group; they must not outlive the run.
      signalGroup('SIGKILL');
      const result = exitCodeOf(code, signal);
      finish(stopReason !== undefined && result === 0 ? 1 : result);
    });
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

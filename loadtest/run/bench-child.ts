/**
 * One bench as a child process: its progress (stderr) goes straight to the terminal, its
 * stdout (the Markdown it also writes to a file) is dropped, and what it wrote is found as
 * the new `<kind>-*.json` files of the reports directory.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Experiment } from './experiments.js';

export interface BenchOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Absolute paths of the JSON files written by the run, oldest first. */
  jsonFiles: string[];
}

export async function listReports(dir: string): Promise<Set<string>> {
  try {
    return new Set(await readdir(dir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
}

export interface RunningBench {
  pid: number;
  done: Promise<BenchOutcome>;
}

export async function runBench(e: Experiment, distDir: string, reportsDir: string, extraArgs: string[]): Promise<RunningBench> {
  const before = await listReports(reportsDir);
  const child = spawn(process.execPath, [path.join(distDir, e.script), ...e.args, ...extraArgs], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const done = exited.then(async ({ code, signal }) => {
    const after = await listReports(reportsDir);
    const jsonFiles = [...after].filter((f) => !before.has(f) && f.startsWith(`${e.kind}-`) && f.endsWith('.json')).sort().map((f) => path.join(reportsDir, f));
    return { exitCode: code, signal, jsonFiles };
  });
  return { pid: child.pid ?? -1, done };
}

#!/usr/bin/env node
/**
 * The `routerctl` executable (package.json bin); everything it does is in cli.ts.
 */
import { runCli } from './cli.js';

const abort = new AbortController();
// Ctrl-C ends a --follow tail cleanly (exit 0) rather than mid-line.
process.once('SIGINT', () => abort.abort());
process.exitCode = await runCli(process.argv.slice(2), process.env, (t) => process.stdout.write(`${t}\n`), (t) => process.stderr.write(`${t}\n`), abort.signal);

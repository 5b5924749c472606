/**
 * `npm run logs -- <app> [--lines N] [--follow]`: an app's access log from the log shipper
 * (LOG_SHIPPER_URL, default http://127.0.0.1:5000; LOG_SHIPPER_TOKEN), one JSON line per
 * request on stdout. Exit codes (sysexits): 0 done, 64 usage, 66 no such endpoint (404),
 * 69 shipper unreachable, 77 refused token (401), 1 anything else.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export const EXIT = { OK: 0, FAILURE: 1, USAGE: 64, NOT_FOUND: 66, UNAVAILABLE: 69, UNAUTHORIZED: 77 } as const;

const USAGE = 'usage: npm run logs -- <app> [--lines N] [--follow]   (env: LOG_SHIPPER_URL, LOG_SHIPPER_TOKEN)';

interface Args {
  app: string;
  lines: number | null;
  follow: boolean;
}

export function parseArgs(argv: readonly string[]): Args | string {
  let app: string | null = null;
  let lines: number | null = null;
  let follow = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--follow' || arg === '-f') follow = true;
    else if (arg === '--lines' || arg === '-n' || arg.startsWith('--lines=')) {
      const value = arg.startsWith('--lines=') ? arg.slice(8) : argv[++i];
      if (value === undefined || !/^[0-9]{1,6}$/.test(value)) return `--lines needs a number (got ${JSON.stringify(value ?? '')})`;
      lines = Number(value);
    } else if (arg.startsWith('-')) return `unknown option ${arg}`;
    else if (app === null) app = arg;
    else return `one app only (got ${JSON.stringify(app)} and ${JSON.stringify(arg)})`;
  }
  if (app === null) return 'which app?';
  return { app, lines, follow };
}

function fail(code: number, message: string): never {
  process.stderr.write(`logs: ${message}\n`);
  process.exit(code);
}

/** Passes lines through, turning the shipper's `{"dropped":N}` notices into a note on stderr. */
function droppedNotices(): Transform {
  let rest = '';
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const text = rest + chunk.toString('utf8');
      const end = text.lastIndexOf('\n');
      rest = text.slice(end + 1);
      if (end < 0) return done();
      let out = '';
      for (const line of text.slice(0, end).split('\n')) {
        const m = /^\{"dropped":([0-9]+)\}$/.exec(line);
        if (m) process.stderr.write(`logs: ${m[1]} lines dropped (this terminal read too slowly)\n`);
        else out += `${line}\n`;
      }
      done(null, out);
    },
    flush(done) {
      done(null, rest.length > 0 ? `${rest}\n` : '');
    },
  });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === 'string') fail(EXIT.USAGE, `${args}\n${USAGE}`);
  const token = process.env['LOG_SHIPPER_TOKEN'];
  if (token === undefined || token === '') fail(EXIT.USAGE, `LOG_SHIPPER_TOKEN is not set\n${USAGE}`);
  const base = process.env['LOG_SHIPPER_URL'] || 'http://127.0.0.1:5000';
  let url: URL;
  try {
    url = new URL(`${base.replace(/\/+$/, '')}/v1/apps/${encodeURIComponent(args.app)}/logs`);
  } catch {
    fail(EXIT.USAGE, `LOG_SHIPPER_URL is not a URL: ${JSON.stringify(base)}`);
  }
  if (args.lines !== null) url.searchParams.set('lines', String(args.lines));
  if (args.follow) url.searchParams.set('follow', '1');

  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/x-ndjson' } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    fail(EXIT.UNAVAILABLE, `cannot reach the log shipper at ${url.origin} (${cause?.code ?? cause?.message ?? (err as Error).message})`);
  }
  if (res.status !== 200) {
    let detail = '';
    try {
      const body = (await res.json()) as { code?: string; message?: string };
      detail = `${body.code ?? ''}: ${body.message ?? ''}`;
    } catch {
      detail = res.statusText;
    }
    if (res.status === 401) fail(EXIT.UNAUTHORIZED, `the log shipper refused the token (401 ${detail}); check LOG_SHIPPER_TOKEN`);
    if (res.status === 404) fail(EXIT.NOT_FOUND, `no tail endpoint at ${url.origin}${url.pathname} (404 ${detail}); check LOG_SHIPPER_URL`);
    fail(EXIT.FAILURE, `the log shipper answered ${res.status} ${detail}`);
  }
  if (res.body === null) return;
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), droppedNotices(), process.stdout);
}

main().catch((err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EPIPE') process.exit(EXIT.OK); // piped into head(1)
  fail(EXIT.FAILURE, (err as Error).message);
});

/**
 * routerctl: the ops CLI, for people and for deploy hooks written in shell. Endpoints and
 * credentials come from the environment or flags; `--json` prints the API's answers for
 * scripts; exit codes: 0 ok, 1 refused by the API, 2 usage, 3 not found, 4 unreachable/5xx.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { commands, type Context } from './commands.js';
import { CliError, EXIT } from './http-client.js';

const GLOBAL_HELP = `routerctl — operate the platform router

usage: routerctl <command> [arguments] [options]

commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(16)} ${c.summary}`)
  .join('\n')}

options (every command):
  --json                     print the API's answer as JSON, for scripts
  --url URL                  control plane (env CONTROL_PLANE_URL, default http://127.0.0.1:4000)
  --token TOKEN              control plane bearer token (env CONTROL_PLANE_TOKEN)
                             events send signs with HOOK_SECRET instead when it is set
  --log-shipper-url URL      log-shipper (env LOG_SHIPPER_URL, default http://127.0.0.1:5000)
  --log-shipper-token TOKEN  log-shipper token (env LOG_SHIPPER_TOKEN)
  -h, --help                 help for routerctl or for a command

Without a token or URL, the local platform's ./.data/dev-token (written by npm start) is used when present.
exit codes: 0 ok, 1 refused by the API, 2 usage, 3 not found, 4 unreachable or server error`;

const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  url: { type: 'string' },
  token: { type: 'string' },
  'log-shipper-url': { type: 'string' },
  'log-shipper-token': { type: 'string' },
  lines: { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
} as const;
const GLOBAL_OPTIONS = new Set(['json', 'help', 'url', 'token', 'log-shipper-url', 'log-shipper-token']);

/** `host:port` is accepted where a URL is expected, as LOG_SHIPPER_URL is for routers. */
function asUrl(raw: string, what: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `http://${raw}`;
  try {
    return new URL(withScheme).toString();
  } catch {
    throw new CliError(`${what}: ${JSON.stringify(raw)} is not a URL`, EXIT.USAGE, 'USAGE');
  }
}

function devToken(cwd: string): string | undefined {
  const path = `${cwd}/.data/dev-token`;
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv, out: (text: string) => void, err: (text: string) => void, signal?: AbortSignal): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (e) {
      throw new CliError(`${(e as Error).message}\n\n${GLOBAL_HELP}`, EXIT.USAGE, 'USAGE');
    }
    const { values, positionals } = parsed;
    const two = positionals.slice(0, 2).join(' ');
    const name = commands[two] !== undefined ? two : positionals[0];
    const command = name === undefined ? undefined : commands[name];
    if (command === undefined) {
      if (values.help === true || positionals.length === 0) {
        out(GLOBAL_HELP);
        return positionals.length === 0 && values.help !== true ? EXIT.USAGE : EXIT.OK;
      }
      throw new CliError(`unknown command: ${positionals.join(' ')}\n\n${GLOBAL_HELP}`, EXIT.USAGE, 'USAGE');
    }
    if (values.help === true) {
      out(`${command.usage}\n\n${command.summary}\n\nSee routerctl --help for the options every command takes.`);
      return EXIT.OK;
    }
    for (const key of Object.keys(values)) {
      if (!GLOBAL_OPTIONS.has(key) && !(command.options ?? []).includes(key)) throw new CliError(`--${key} does not apply to ${name}\nusage: ${command.usage}`, EXIT.USAGE, 'USAGE');
    }
    // The development token of `npm start` stands in only for the local platform's own addresses.
    const cpUrl = values.url ?? env['CONTROL_PLANE_URL'];
    const shipperUrl = values['log-shipper-url'] ?? env['LOG_SHIPPER_URL'];
    const ctx: Context = {
      controlPlane: {
        url: asUrl(cpUrl ?? 'http://127.0.0.1:4000', 'control plane URL'),
        token: values.token ?? (env['CONTROL_PLANE_TOKEN'] || undefined) ?? (cpUrl === undefined ? devToken(process.cwd()) : undefined),
        hookSecret: env['HOOK_SECRET'] || undefined,
      },
      logShipper: {
        url: asUrl(shipperUrl ?? 'http://127.0.0.1:5000', 'log-shipper URL'),
        token: values['log-shipper-token'] ?? (env['LOG_SHIPPER_TOKEN'] || undefined) ?? (shipperUrl === undefined ? devToken(process.cwd()) : undefined),
      },
      json: values.json === true,
      out,
      ...(signal !== undefined ? { signal } : {}),
    };
    await command.run(ctx, positionals.slice(name!.split(' ').length), values);
    return EXIT.OK;
  } catch (e) {
    if (e instanceof CliError) {
      err(`routerctl: ${e.message}`);
      return e.exitCode;
    }
    err(`routerctl: ${(e as Error).stack ?? String(e)}`);
    return EXIT.UNAVAILABLE;
  }
}

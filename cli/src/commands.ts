/**
 * Each command: its usage text and what it does with its arguments. Output goes through
 * `out` so tests can capture it; --json prints the API's answer as it came.
 */
import { readFile } from 'node:fs/promises';
import { CliError, EXIT, getJson, send, type Endpoint } from './http-client.js';
import { table } from './table.js';
import { tail } from './tail.js';

export interface Context {
  controlPlane: Endpoint;
  logShipper: Endpoint;
  json: boolean;
  out: (text: string) => void;
  /** Aborts a --follow tail (Ctrl-C, tests). */
  signal?: AbortSignal;
}

export interface Command {
  usage: string;
  summary: string;
  /** Option names this command accepts besides the global ones. */
  options?: readonly string[];
  run(ctx: Context, args: string[], options: Record<string, string | boolean | undefined>): Promise<void>;
}

interface AppView {
  app: string;
  status: string;
  version: number;
  containers: Array<{ id: string; host: string; port: number }>;
  hostnames: string[];
  domains: string[];
  certificates: Array<{ domain: string; expires_in_days: number }>;
  updated_at: string;
}

interface RouterView {
  host: string;
  worker: number;
  pid: number;
  code_version: string;
  config_version: number;
  lag: number;
  subscribed: boolean;
  inflight: number;
  websockets: number;
  last_seen_ms_ago: number;
}

function oneArg(args: string[], what: string, usage: string): string {
  if (args.length !== 1) throw new CliError(`expected ${what}\nusage: ${usage}`, EXIT.USAGE, 'USAGE');
  return args[0]!;
}

const print = (ctx: Context, value: unknown, human: () => string): void => ctx.out(ctx.json ? JSON.stringify(value, null, 2) : human());

export const commands: Record<string, Command> = {
  'apps list': {
    usage: 'routerctl apps list [--json]',
    summary: 'every app with its status, containers and hostnames',
    async run(ctx, args) {
      if (args.length > 0) throw new CliError(`unexpected argument ${args[0]}\nusage: ${this.usage}`, EXIT.USAGE, 'USAGE');
      const apps: AppView[] = [];
      let cursor: string | null = null;
      do {
        const page: { apps: AppView[]; next_cursor: string | null } = await getJson(ctx.controlPlane, `/v1/apps?limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
        apps.push(...page.apps);
        cursor = page.next_cursor;
      } while (cursor !== null);
      print(ctx, { apps }, () =>
        apps.length === 0 ? 'no apps' : table(['APP', 'STATUS', 'CONTAINERS', 'HOSTNAMES'], apps.map((a) => [a.app, a.status, a.containers.length, a.hostnames.join(',')])),
      );
    },
  },

  'apps show': {
    usage: 'routerctl apps show <app> [--json]',
    summary: 'one app: containers, hostnames, certificates, settings',
    async run(ctx, args) {
      const name = oneArg(args, 'an app name', this.usage);
      const app = await getJson<AppView & { settings: unknown }>(ctx.controlPlane, `/v1/apps/${encodeURIComponent(name)}`);
      print(ctx, app, () =>
        [
          `app:          ${app.app}`,
          `status:       ${app.status} (version ${app.version}, updated ${app.updated_at})`,
          `hostnames:    ${app.hostnames.join(', ') || '-'}`,
          `settings:     ${JSON.stringify(app.settings)}`,
          `containers:   ${app.containers.length}`,
          ...app.containers.map((c) => `  ${c.id}  ${c.host}:${c.port}`),
          `certificates: ${app.certificates.length === 0 ? '-' : ''}`,
          ...app.certificates.map((c) => `  ${c.domain}  expires in ${c.expires_in_days} days`),
        ].join('\n'),
      );
    },
  },

  'routes resolve': {
    usage: 'routerctl routes resolve <hostname> [--json]',
    summary: 'what a router resolves for a hostname (exact, then wildcard)',
    async run(ctx, args) {
      const hostname = oneArg(args, 'a hostname', this.usage);
      const route = await getJson<{ hostname: string; matched: string; app: string; status: string; containers: Array<{ id: string; host: string; port: number }> }>(ctx.controlPlane, `/v1/routes/${encodeURIComponent(hostname)}`);
      print(ctx, route, () => [`${route.hostname} → ${route.app} (${route.status}, matched ${route.matched})`, ...route.containers.map((c) => `  ${c.id}  ${c.host}:${c.port}`)].join('\n'));
    },
  },

  routers: {
    usage: 'routerctl routers [--json]',
    summary: 'the fleet: every router worker, its code, config version and lag',
    async run(ctx, args) {
      if (args.length > 0) throw new CliError(`unexpected argument ${args[0]}\nusage: ${this.usage}`, EXIT.USAGE, 'USAGE');
      const view = await getJson<{ version: number; routers: RouterView[] }>(ctx.controlPlane, '/v1/routers');
      print(ctx, view, () =>
        [
          `config version ${view.version}, ${view.routers.length} router worker(s)`,
          table(
            ['HOST', 'WORKER', 'PID', 'CODE', 'CONFIG', 'LAG', 'SUBSCRIBED', 'INFLIGHT', 'WEBSOCKETS', 'SEEN'],
            view.routers.map((r) => [r.host, r.worker, r.pid, r.code_version, r.config_version, r.lag, r.subscribed, r.inflight, r.websockets, `${(r.last_seen_ms_ago / 1000).toFixed(1)}s ago`]),
          ),
        ].join('\n'),
      );
    },
  },

  'events send': {
    usage: 'routerctl events send <file.json | -> [--json]',
    summary: 'send an app event (deploy, scale, ...) to the control plane, signed with HOOK_SECRET when set, else with the token',
    async run(ctx, args) {
      const file = oneArg(args, 'a JSON file (or - for stdin)', this.usage);
      let body: Buffer;
      try {
        body = file === '-' ? await readStdin() : await readFile(file);
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`, EXIT.USAGE, 'USAGE');
      }
      try {
        JSON.parse(body.toString('utf8'));
      } catch (err) {
        throw new CliError(`${file} is not JSON: ${(err as Error).message}`, EXIT.USAGE, 'USAGE');
      }
      const res = await send(ctx.controlPlane, 'POST', '/v1/events', body);
      const answer = (await res.json()) as { app?: string; version?: number; duplicate?: boolean };
      print(ctx, answer, () => `applied: ${JSON.stringify(answer)}`);
    },
  },

  logs: {
    usage: 'routerctl logs <app> [--lines N] [--follow] [--json]',
    summary: "an app's access log from the log-shipper: the last N lines (default 100), then new ones with --follow",
    options: ['lines', 'follow'],
    async run(ctx, args, options) {
      const app = oneArg(args, 'an app name', this.usage);
      const raw = options['lines'];
      const lines = raw === undefined ? 100 : Number(raw);
      if (!Number.isSafeInteger(lines) || lines < 0 || lines > 100_000) throw new CliError('--lines must be an integer from 0 to 100000', EXIT.USAGE, 'USAGE');
      await tail(ctx.logShipper, app, lines, options['follow'] === true, ctx.out, ctx.signal);
    },
  },
};

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

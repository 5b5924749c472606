/**
 * Environment configuration: each service declares its variables once (name, meaning,
 * default, parser) and reads them all at start. A malformed variable stops the service with
 * a message naming it; the same declarations document the variables and let deploy/ be
 * checked against the code.
 */

export interface Variable<T> {
  readonly name: string;
  readonly description: string;
  /** Shown in docs; `undefined` when the variable is optional with no default. */
  readonly defaultText: string | undefined;
  readonly secret: boolean;
  read(raw: string | undefined): T;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** Thrown by parsers; the loader prefixes the variable's name. */
export class InvalidValue extends Error {}

type Parser<T> = (raw: string) => T;

interface Options {
  secret?: boolean;
}

export function optional<T>(name: string, description: string, parse: Parser<T>, options: Options = {}): Variable<T | undefined> {
  return {
    name,
    description,
    defaultText: undefined,
    secret: options.secret ?? false,
    read: (raw) => (raw === undefined || raw === '' ? undefined : parse(raw)),
  };
}

export function withDefault<T>(name: string, description: string, parse: Parser<T>, fallback: T, options: Options = {}): Variable<T> {
  return {
    name,
    description,
    defaultText: String(fallback),
    secret: options.secret ?? false,
    read: (raw) => (raw === undefined || raw === '' ? fallback : parse(raw)),
  };
}

export type ConfigOf<V> = { [K in keyof V]: V[K] extends Variable<infer T> ? T : never };

export function loadConfig<V extends Record<string, Variable<unknown>>>(vars: V, env: NodeJS.ProcessEnv = process.env): ConfigOf<V> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, variable] of Object.entries(vars)) {
    const raw = env[variable.name];
    try {
      out[key] = variable.read(raw);
    } catch (err) {
      const shown = variable.secret || raw === undefined ? '' : ` (got ${JSON.stringify(raw.slice(0, 80))})`;
      problems.push(`${variable.name}: ${(err as Error).message}${shown}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<V>;
}

export const parse = {
  string: (raw: string): string => raw,

  integer:
    (min: number, max: number): Parser<number> =>
    (raw) => {
      if (!/^-?[0-9]+$/.test(raw.trim())) throw new InvalidValue(`must be an integer between ${min} and ${max}`);
      const n = Number(raw.trim());
      if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidValue(`must be an integer between ${min} and ${max}`);
      return n;
    },

  port: (raw: string): number => parse.integer(0, 65535)(raw),

  boolean: (raw: string): boolean => {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new InvalidValue('must be true or false');
  },

  oneOf:
    <T extends string>(...allowed: T[]): Parser<T> =>
    (raw) => {
      if (!(allowed as string[]).includes(raw)) throw new InvalidValue(`must be one of ${allowed.join(', ')}`);
      return raw as T;
    },

  /** Comma-separated, blanks dropped; an all-blank list is an error rather than silently empty. */
  list: (raw: string): string[] => {
    const items = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) throw new InvalidValue('must be a comma-separated list with at least one item');
    return items;
  },

  url:
    (...protocols: string[]): Parser<URL> =>
    (raw) => {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new InvalidValue(`must be a URL (${protocols.map((p) => `${p}//...`).join(' or ')})`);
      }
      if (!protocols.includes(url.protocol)) throw new InvalidValue(`must use ${protocols.join(' or ')}`);
      return url;
    },

  hostPortList: (raw: string): Array<{ host: string; port: number }> =>
    parse.list(raw).map((item) => {
      const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):([0-9]{1,5})$/.exec(item);
      const port = m ? Number(m[2]) : NaN;
      if (!m || port < 1 || port > 65535) throw new InvalidValue(`"${item}" is not host:port`);
      return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
    }),
};

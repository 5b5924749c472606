/**
 * What the deploy tests share: reading deploy/ files, knowing which service a command runs,
 * and loading an environment with the service's own loader (so "required" and "valid" mean
 * exactly what they mean at start, not a second list kept here).
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../../proto/config/env.js';
import { connectRedis, type StoreAddress } from '../../proto/redis-connection.js';
import { sourcePath } from '../../proto/source-path.js';
import { loadControlPlaneConfig } from '../../control-plane/src/config.js';
import { loadRouterConfig } from '../../data-plane/src/config.js';
import { loadLogShipperConfig } from '../../log-shipper/src/config.js';
import { SERVICES, type DeployedService, type ServiceName } from '../services.js';

/** Compiled entry points on branches not merged yet: the deploy files are right, the code comes with the merge. */
export const NOT_MERGED_ENTRIES: ReadonlySet<string> = new Set<string>([]);

/** A path in the checkout (deploy/test/ compiles to dist/deploy/test/, mapped back). */
export function repoPath(...segments: string[]): string {
  return sourcePath(import.meta.url, '..', '..', ...segments);
}

export function readRepoFile(...segments: string[]): string {
  return readFileSync(repoPath(...segments), 'utf8');
}

/** Every document of a YAML file; a syntax error anywhere throws with the file's name. */
export function readYaml(...segments: string[]): unknown[] {
  const docs = parseAllDocuments(readRepoFile(...segments), { merge: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${segments.join('/')}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  });
}

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function obj(v: unknown, what: string): Json {
  if (!isObject(v)) throw new Error(`${what}: expected a mapping, got ${JSON.stringify(v)}`);
  return v;
}

export function list(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${what}: expected a list, got ${JSON.stringify(v)}`);
  return v;
}

/** The service whose compiled entry point a command runs (`node dist/.../main.js`), if any. */
export function serviceOfCommand(command: readonly unknown[]): DeployedService | undefined {
  return SERVICES.find((s) => command.some((arg) => arg === s.entry || (typeof arg === 'string' && arg.endsWith(`/${s.entry}`))));
}

export interface Listener {
  host: string;
  port: number;
}

/** A service's configuration as its own loader reads it, reduced to what deploy files must agree with. */
export interface Loaded {
  service: ServiceName;
  /** Where /healthz and /readyz are served. */
  probe: Listener;
  /** Every listener by role. */
  listeners: Record<string, Listener>;
  drainTimeoutMs?: number;
  logDir?: string;
  tokens?: string[];
  store?: StoreAddress;
}

/**
 * Loads `env` as `name` does at start; throws what would stop it: a ConfigError, or the
 * store address error connectRedis raises when neither REDIS_URL nor REDIS_SENTINELS is set.
 */
export function loadService(name: ServiceName, env: Record<string, string>): Loaded {
  let loaded: Loaded;
  if (name === 'control-plane') {
    const c = loadControlPlaneConfig(env);
    loaded = { service: name, probe: { host: c.host, port: c.port }, listeners: { http: { host: c.host, port: c.port }, grpc: { host: c.host, port: c.grpcPort } }, tokens: c.tokens ?? [], store: c };
  } else if (name === 'router') {
    const c = loadRouterConfig(env);
    loaded = {
      service: name,
      probe: { host: c.adminHost, port: c.adminPort },
      listeners: { http: { host: c.host, port: c.httpPort }, https: { host: c.host, port: c.httpsPort }, admin: { host: c.adminHost, port: c.adminPort } },
      drainTimeoutMs: c.drainTimeoutMs,
      store: c,
    };
  } else {
    const c = loadLogShipperConfig(env);
    loaded = { service: name, probe: { host: c.host, port: c.port }, listeners: { logs: { host: c.host, port: c.port } }, logDir: c.logDir, tokens: c.tokens ?? [] };
    if (c.backends.includes('bullmq')) loaded.store = c;
  }
  if (loaded.store !== undefined) {
    // The client is created (and closed at once) only to run the code's own address rule.
    const client = connectRedis(loaded.store, { connectionName: 'deploy-test' });
    client.on('error', () => undefined);
    client.disconnect();
  }
  return loaded;
}

/** The message of what `loadService` threw, or null when the service would start. */
export function refusal(name: ServiceName, env: Record<string, string>): string | null {
  try {
    loadService(name, env);
    return null;
  } catch (err) {
    return err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
  }
}

/** Names in `env` the service does not declare. */
export function undeclared(s: DeployedService, names: Iterable<string>): string[] {
  const declared = new Set(s.variables.map((v) => v.name));
  return [...names].filter((n) => !declared.has(n));
}

export function isSecret(s: DeployedService, name: string): boolean {
  return s.variables.some((v) => v.name === name && v.secret);
}

/** A valid value for a placeholder of `s`, for loading files whose secrets are left empty. */
export function sampleFor(s: DeployedService, name: string): string {
  const placeholder = s.placeholders[name];
  if (placeholder === undefined) throw new Error(`${name} has no placeholder in deploy/services.ts for the ${s.name}: add one (how to fill it, a sample value)`);
  return placeholder.sample();
}

export const ANY_ADDRESS = new Set(['0.0.0.0', '::', '[::]']);
export const LOOPBACK_OR_ANY = new Set([...ANY_ADDRESS, '127.0.0.1', 'localhost', '::1']);

/**
 * Compose interpolation of `${NAME}`, `${NAME:-default}` and `${NAME-default}` with no
 * variable set (what `docker compose up` does in a clean shell); `$$` is a literal `$`.
 */
export function interpolate(value: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (m, _name: string | undefined, fallback: string | undefined) => {
    if (m === '$$') return '$';
    return fallback ?? '';
  });
}

/** The host and port of a `tcp://host:port`, `redis://...` or `host:port` address. */
export function hostPort(address: string): Listener {
  const url = new URL(/^[a-z]+:\/\//i.test(address) ? address : `tcp://${address}`);
  return { host: url.hostname, port: Number(url.port) };
}

/**
 * The three services as deploy/ runs them: which variables each one declares (the only
 * names a deploy file may give it), and what a server deployment sets, leaves for the
 * operator to fill in, or shows as an example. The systemd env files are generated from
 * this (scripts/gen-deploy-env.ts) and deploy/test checks every other deploy file against it.
 */
import { randomBytes } from 'node:crypto';
import type { Variable } from '../proto/config/env.js';
import { controlPlaneVariables } from '../control-plane/src/config.js';
import { routerVariables } from '../data-plane/src/config.js';
import { logShipperVariables } from '../log-shipper/src/config.js';
import { declaredVariables, pendingRouterVariables } from './pending-variables.js';

export type ServiceName = 'control-plane' | 'router' | 'log-shipper';

export interface Setting {
  readonly value: string;
  /** Why a server differs from the code's default: shown above the line. */
  readonly why: string;
}

export interface Placeholder {
  /** What to put there, shown above the empty line. */
  readonly how: string;
  /** A valid value of the same shape, for the tests (never written into a file). */
  readonly sample: () => string;
}

export interface DeployedService {
  readonly name: ServiceName;
  /** systemd unit, without `.service`. */
  readonly unit: string;
  /** Compiled entry point, relative to the checkout. */
  readonly entry: string;
  /** Where the declarations live, for the generated file's header. */
  readonly declaredIn: readonly string[];
  readonly variables: readonly Variable<unknown>[];
  readonly settings: Readonly<Record<string, Setting>>;
  readonly placeholders: Readonly<Record<string, Placeholder>>;
}

/** Where the systemd units read their environment; the env files are installed there. */
export const ENV_DIR = '/etc/platform';
/** The log-shipper's LOG_DIR on a server: its unit's LogsDirectory= and logrotate's glob. */
export const SERVER_LOG_DIR = '/var/log/platform';

const token = (): string => randomBytes(32).toString('hex');

const redisUrl: Placeholder = {
  how: 'the platform\'s Redis, e.g. redis://:password@10.0.0.5:6379 (or leave empty and set REDIS_SENTINELS below)',
  sample: () => 'redis://10.0.0.5:6379',
};
const platformDomain: Placeholder = {
  how: 'the domain apps answer under, e.g. apps.example.com (the same on the control plane and every router)',
  sample: () => 'apps.example.com',
};
const keyEncryptionKey: Placeholder = {
  how: 'openssl rand -base64 32, generated once: the same value on every control plane and router',
  sample: () => randomBytes(32).toString('base64'),
};

/**
 * Commented examples shown instead of the default, for every service that declares the
 * variable: the Sentinel lines match deploy/redis/sentinel.conf (its `sentinel monitor` name).
 */
export const EXAMPLES: Readonly<Record<string, { value: string; note: string }>> = {
  REDIS_SENTINELS: { value: '10.0.0.11:26379,10.0.0.12:26379,10.0.0.13:26379', note: 'With Redis Sentinel (deploy/redis/sentinel.conf), instead of REDIS_URL:' },
  REDIS_SENTINEL_NAME: { value: 'platform', note: 'The name in deploy/redis/sentinel.conf\'s `sentinel monitor` line:' },
};

export const SERVICES: readonly DeployedService[] = [
  {
    name: 'control-plane',
    unit: 'platform-control-plane',
    entry: 'dist/control-plane/src/main.js',
    declaredIn: ['control-plane/src/config.ts', 'proto/config/shared.ts'],
    variables: declaredVariables(controlPlaneVariables),
    settings: {
      CONTROL_PLANE_HOST: { value: '0.0.0.0', why: 'deploy hooks, routerctl and Prometheus reach it from other machines: firewall ports 4000 and 4001 to the internal network.' },
    },
    placeholders: {
      REDIS_URL: redisUrl,
      PLATFORM_DOMAIN: platformDomain,
      CONTROL_PLANE_TOKENS: { how: 'openssl rand -hex 32 (comma-separated to rotate); the service refuses to start with neither this nor HOOK_SECRET', sample: token },
      KEY_ENCRYPTION_KEY: keyEncryptionKey,
    },
  },
  {
    name: 'router',
    unit: 'platform-router',
    entry: 'dist/data-plane/src/main.js',
    declaredIn: ['data-plane/src/config.ts', 'proto/config/shared.ts', 'deploy/pending-variables.ts'],
    variables: declaredVariables(routerVariables, pendingRouterVariables),
    settings: {
      ROUTER_HTTP_PORT: { value: '80', why: 'a front server: the unit grants CAP_NET_BIND_SERVICE, nothing else.' },
      ROUTER_HTTPS_PORT: { value: '443', why: 'a front server; force_https redirects then carry no port.' },
    },
    placeholders: {
      REDIS_URL: redisUrl,
      PLATFORM_DOMAIN: platformDomain,
      KEY_ENCRYPTION_KEY: keyEncryptionKey,
      LOG_SHIPPER_URL: { how: 'the log-shipper\'s listener, e.g. tcp://10.0.0.7:5000 (its LOG_SHIPPER_HOST and LOG_SHIPPER_PORT)', sample: () => 'tcp://10.0.0.7:5000' },
      LOG_SHIPPER_TOKEN: { how: 'one of the log-shipper\'s LOG_SHIPPER_TOKEN values', sample: token },
    },
  },
  {
    name: 'log-shipper',
    unit: 'platform-log-shipper',
    entry: 'dist/log-shipper/src/main.js',
    declaredIn: ['log-shipper/src/config.ts', 'proto/config/shared.ts'],
    variables: declaredVariables(logShipperVariables),
    settings: {
      LOG_SHIPPER_HOST: { value: '0.0.0.0', why: 'routers on other machines send their batches here: firewall the port to the routers and the ops network.' },
      LOG_DIR: { value: SERVER_LOG_DIR, why: 'the unit\'s LogsDirectory= (writable under ProtectSystem=strict) and the glob of deploy/logrotate/platform-log-shipper.' },
    },
    placeholders: {
      LOG_SHIPPER_TOKEN: { how: 'openssl rand -hex 32 (comma-separated to rotate); routers send it as their LOG_SHIPPER_TOKEN, routerctl logs as --log-shipper-token', sample: token },
    },
  },
];

export function service(name: ServiceName): DeployedService {
  const found = SERVICES.find((s) => s.name === name);
  if (found === undefined) throw new Error(`no service ${name}`);
  return found;
}

export function envFilePath(s: DeployedService): string {
  return `${ENV_DIR}/${s.name}.env`;
}

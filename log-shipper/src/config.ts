/**
 * The log shipper's environment, declared once (see proto/config/env.ts). Of the shared
 * variables it reads only LOG_LEVEL and the REDIS_* ones (for the bullmq backend): it holds
 * no private keys and serves no hostnames.
 */
import { ConfigError, InvalidValue, loadConfig, optional, parse, withDefault, type ConfigOf } from '../../proto/config/env.js';
import { sharedVariables } from '../../proto/config/shared.js';

export type BackendName = 'file' | 'bullmq';
export type FsyncMode = 'never' | 'interval' | 'always';

const MIB = 1024 * 1024;

function backendList(raw: string): BackendName[] {
  const names = parse.list(raw);
  const out: BackendName[] = [];
  for (const name of names) {
    if (name !== 'file' && name !== 'bullmq') throw new InvalidValue(`unknown backend "${name}": use file, bullmq or file,bullmq`);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

function queueName(raw: string): string {
  // BullMQ builds its keys as <prefix>:<queue>:<suffix>: a colon in the name would blur them.
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(raw)) throw new InvalidValue('must be 1-100 characters of A-Z a-z 0-9 _ . -');
  return raw;
}

export const logShipperVariables = {
  redisUrl: sharedVariables.redisUrl,
  redisSentinels: sharedVariables.redisSentinels,
  redisSentinelName: sharedVariables.redisSentinelName,
  redisPrefix: sharedVariables.redisPrefix,
  logLevel: sharedVariables.logLevel,
  host: withDefault('LOG_SHIPPER_HOST', 'Address of the listener (router batches and the HTTP API share it).', parse.string, '127.0.0.1'),
  port: withDefault('LOG_SHIPPER_PORT', 'Port of the listener (0: any free port).', parse.port, 5000),
  tokens: optional('LOG_SHIPPER_TOKEN', 'Required. The token routers send in HELLO and tail clients send as a bearer token; a comma-separated list is accepted, so a token can be rotated (list old and new, then drop the old).', parse.list, { secret: true }),
  backends: withDefault('LOG_BACKENDS', 'Where batches go: file, bullmq, or file,bullmq (a batch is acknowledged once every one of them has it).', backendList, ['file'] as BackendName[]),
  logDir: withDefault('LOG_DIR', 'Directory of the per-app files <LOG_DIR>/<app>/router.log (npm start: .data/logs).', parse.string, './logs'),
  maxOpenFiles: withDefault('LOG_MAX_OPEN_FILES', 'Log files kept open at most (least recently written closed first).', parse.integer(1, 1_000_000), 1024),
  rotateBytes: withDefault('LOG_ROTATE_BYTES', 'Size past which router.log is renamed router.log.1 and a new one started; 0: never rotate by size.', parse.integer(0, Number.MAX_SAFE_INTEGER), 100 * MIB),
  rotateKeep: withDefault('LOG_ROTATE_KEEP', 'Rotated files kept per app (router.log.1 … router.log.N); 0: a full file is discarded.', parse.integer(0, 1000), 5),
  fsync: withDefault('LOG_FSYNC', 'never: acknowledged once written to the OS; interval: also fdatasync every LOG_FSYNC_INTERVAL; always: acknowledged only after fdatasync.', parse.oneOf<FsyncMode>('never', 'interval', 'always'), 'interval' as FsyncMode),
  fsyncIntervalMs: withDefault('LOG_FSYNC_INTERVAL', 'Period of the fdatasync of written files with LOG_FSYNC=interval (milliseconds).', parse.integer(10, 3_600_000), 1000),
  tailBufferLines: withDefault('LOG_TAIL_BUFFER_LINES', 'Without the file backend: lines kept in memory per app for the history of a tail (0: none).', parse.integer(0, 1_000_000), 1000),
  tailBufferBytes: withDefault('LOG_TAIL_BUFFER_BYTES', 'Without the file backend: memory for those lines across all apps; the least recently written apps are forgotten first.', parse.integer(0, Number.MAX_SAFE_INTEGER), 64 * MIB),
  queueName: withDefault('LOG_QUEUE_NAME', 'BullMQ queue the bullmq backend adds jobs to (one job per app per batch).', queueName, 'router-logs'),
};

export type LogShipperConfig = ConfigOf<typeof logShipperVariables>;

export function loadLogShipperConfig(env: NodeJS.ProcessEnv = process.env): LogShipperConfig {
  const config = loadConfig(logShipperVariables, env);
  if (config.tokens === undefined || config.tokens.length === 0) {
    throw new ConfigError(['LOG_SHIPPER_TOKEN must be set: the shipper refuses to accept logs or serve tails without authentication']);
  }
  return config;
}

/** The tokens, once loadLogShipperConfig has checked there is at least one. */
export function tokensOf(config: LogShipperConfig): string[] {
  return config.tokens ?? [];
}

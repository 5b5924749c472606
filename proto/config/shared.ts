/**
 * Variables every service reads the same way: where the store is, which key prefix the
 * platform uses, and the platform's own domain. Declared once so the control plane and the
 * routers cannot disagree on them.
 */
import { DEFAULT_PREFIX, isValidPrefix } from '../keys.js';
import { normalizeHostname } from '../names.js';
import { InvalidValue, optional, parse, withDefault } from './env.js';

export const sharedVariables = {
  redisUrl: optional('REDIS_URL', 'Redis to use (redis:// or rediss://). Unset under `npm start`: an embedded redis-server is started.', parse.url('redis:', 'rediss:'), { secret: true }),
  redisSentinels: optional('REDIS_SENTINELS', 'Sentinels as host:port,host:port; takes precedence over REDIS_URL.', parse.hostPortList),
  redisSentinelName: withDefault('REDIS_SENTINEL_NAME', 'The master name the sentinels monitor.', parse.string, 'mymaster'),
  redisPrefix: withDefault(
    'REDIS_PREFIX',
    'Prefix of every key and channel, so several platforms or test runs can share one Redis.',
    (raw) => {
      if (!isValidPrefix(raw)) throw new InvalidValue('must be at most 64 characters of A-Z a-z 0-9 _ . : { } -');
      return raw;
    },
    DEFAULT_PREFIX,
  ),
  platformDomain: withDefault(
    'PLATFORM_DOMAIN',
    'Every app answers on <app>.<PLATFORM_DOMAIN> besides its custom domains.',
    (raw) => {
      const name = normalizeHostname(raw);
      if (name === null) throw new InvalidValue('must be a DNS name such as apps.example.com');
      return name;
    },
    'localhost',
  ),
  logLevel: withDefault('LOG_LEVEL', 'pino level: fatal, error, warn, info, debug, trace, silent.', parse.oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), 'info'),
};

/**
 * Variables every service reads the same way: where the store is, which key prefix the
 * platform uses, the platform's own domain, and the key that seals private keys at rest.
 * Declared once so the control plane and the routers cannot disagree on them.
 */
import { EncryptionKey } from '../key-envelope.js';
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
  keyEncryptionKey: optional(
    'KEY_ENCRYPTION_KEY',
    'Base64 of 32 random bytes (openssl rand -base64 32): encrypts private keys at rest (AES-256-GCM). The same on every control plane and router. Unset under `npm start`: a development key is kept in .data/.',
    (raw) => EncryptionKey.fromBase64(raw),
    { secret: true },
  ),
  keyEncryptionKeysPrevious: optional(
    'KEY_ENCRYPTION_KEYS_PREVIOUS',
    'Comma-separated previous KEY_ENCRYPTION_KEYs, still accepted for decryption while `npm run rotate-encryption-key` re-encrypts (see Rotating the key-encryption key).',
    (raw) => parse.list(raw).map((item, i) => {
      try {
        return EncryptionKey.fromBase64(item);
      } catch (err) {
        throw new InvalidValue(`item ${i + 1}: ${(err as Error).message}`);
      }
    }),
    { secret: true },
  ),
  logLevel: withDefault('LOG_LEVEL', 'pino level: fatal, error, warn, info, debug, trace, silent.', parse.oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), 'info'),
};

/** Rules across shared variables, which a single parser cannot see; each service's loader throws them as a ConfigError. */
export function sharedProblems(config: { keyEncryptionKey: EncryptionKey | undefined; keyEncryptionKeysPrevious: EncryptionKey[] | undefined }): string[] {
  if (config.keyEncryptionKey === undefined && config.keyEncryptionKeysPrevious !== undefined) {
    return ['KEY_ENCRYPTION_KEYS_PREVIOUS: set without KEY_ENCRYPTION_KEY (set the new key as KEY_ENCRYPTION_KEY and keep the old ones here)'];
  }
  return [];
}

/**
 * `npm run rotate-encryption-key`: re-encrypts every stored private key under REDIS_PREFIX
 * with KEY_ENCRYPTION_KEY, opening each with the ring (KEY_ENCRYPTION_KEY plus
 * KEY_ENCRYPTION_KEYS_PREVIOUS). Safe to run while the platform serves and to run again:
 * records already sealed with the current key are left alone. Exit code 0 when every record
 * is sealed with the current key afterwards, 1 otherwise, 78 on a configuration error.
 */
import type { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../../proto/config/env.js';
import { sharedProblems, sharedVariables } from '../../proto/config/shared.js';
import { keyRingFrom } from '../../proto/key-envelope.js';
import { KeySchema } from '../../proto/keys.js';
import { connectRedis } from '../../proto/redis-connection.js';
import { reencryptAll } from './core/reencrypt.js';
import { CertRecordStore } from './store/cert-records.js';

const CONNECT_TIMEOUT_MS = 10_000;

function connected(redis: Redis): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Redis did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig(sharedVariables);
    const problems = sharedProblems(config);
    if (config.keyEncryptionKey === undefined) problems.push('KEY_ENCRYPTION_KEY: must be set to the new key (the old one goes in KEY_ENCRYPTION_KEYS_PREVIOUS)');
    if (problems.length > 0) throw new ConfigError(problems);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`rotate-encryption-key: ${err.message}\n`);
    return 78;
  }
  const ring = keyRingFrom(config)!;
  const redis = connectRedis(config, { connectionName: 'rotate-encryption-key', commandTimeoutMs: 5000 });
  redis.on('error', () => {
    // Reported by the command that fails; the client retries on its own meanwhile.
  });
  try {
    await connected(redis);
    const report = await reencryptAll(new CertRecordStore(redis, new KeySchema(config.redisPrefix)), ring);
    for (const f of report.failed) process.stderr.write(`cert:${f.domain}: ${f.reason}\n`);
    process.stdout.write(
      `re-encrypted ${report.reencrypted}, already current ${report.unchanged}, failed ${report.failed.length} ` +
        `(prefix ${config.redisPrefix}, current key ${ring.current.kid})\n`,
    );
    return report.failed.length === 0 ? 0 : 1;
  } finally {
    redis.disconnect();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`rotate-encryption-key: ${(err as Error).message}\n`);
    process.exit(1);
  },
);

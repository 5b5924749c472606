/**
 * Helpers for tests that talk to the real redis-server `npm test` starts: each test works
 * under its own random key prefix, so test files can run in parallel on one Redis and a
 * failed test leaves nothing another test could trip over.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export function redisUrl(): string {
  const url = process.env['REDIS_URL'];
  if (url === undefined || url === '') {
    throw new Error('REDIS_URL is not set: run the tests with `npm test`, which starts a redis-server and sets it (or set REDIS_URL to a Redis you can flush)');
  }
  return url;
}

export function uniquePrefix(label: string): string {
  return `t:${label}:${randomBytes(4).toString('hex')}:`;
}

/** SCAN rather than KEYS so cleanup never blocks a Redis other test files are using. */
export async function deleteByPrefix(redis: Redis, prefix: string): Promise<void> {
  // The prefix is a literal: escape the glob characters SCAN MATCH would interpret.
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

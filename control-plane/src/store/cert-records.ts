/**
 * Whole-keyspace access to `cert:` records, for maintenance (re-encrypting private keys):
 * a SCAN that never blocks Redis, and a per-record compare-and-set.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { KeySchema } from '../../../proto/keys.js';
import { sourcePath } from '../../../proto/source-path.js';

const REPLACE_IF_UNCHANGED_LUA = readFileSync(sourcePath(import.meta.url, 'commands', 'replace-if-unchanged.lua'), 'utf8');

interface ReplaceCommand {
  replaceIfUnchanged(key: string, expected: string, next: string): Promise<number>;
}

export class CertRecordStore {
  private readonly redis: Redis & ReplaceCommand;

  constructor(
    redis: Redis,
    private readonly keys: KeySchema,
  ) {
    redis.defineCommand('replaceIfUnchanged', { numberOfKeys: 1, lua: REPLACE_IF_UNCHANGED_LUA });
    this.redis = redis as Redis & ReplaceCommand;
  }

  /** Every certificate domain stored under the prefix (SCAN: may repeat one, never misses one present throughout). */
  async *domains(): AsyncGenerator<string> {
    const base = this.keys.cert('');
    const pattern = `${base.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      for (const key of found) yield key.slice(base.length);
    } while (cursor !== '0');
  }

  get(domain: string): Promise<string | null> {
    return this.redis.get(this.keys.cert(domain));
  }

  /** False when the record is no longer `expected` (an event rewrote or removed it). */
  async replaceIfUnchanged(domain: string, expected: string, next: string): Promise<boolean> {
    return (await this.redis.replaceIfUnchanged(this.keys.cert(domain), expected, next)) === 1;
  }
}

/**
 * Placeholder so this branch compiles: the BullMQ backend is written on its own branch
 * against backend.ts and replaces this file at merge. LOG_BACKENDS=bullmq fails at start
 * until then, with this message.
 */
import type { Logger } from 'pino';
import type { LogBackend } from './backend.js';

export interface BullmqBackendConfig {
  redisUrl: URL | undefined;
  redisSentinels: Array<{ host: string; port: number }> | undefined;
  redisSentinelName: string;
  redisPrefix: string;
  queueName: string;
}

export async function createBullmqBackend(_config: BullmqBackendConfig, _log: Logger): Promise<LogBackend & { ready(): boolean }> {
  throw new Error('bullmq backend not built yet');
}

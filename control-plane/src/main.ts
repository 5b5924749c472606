/**
 * `npm run control-plane`: configured only by the environment, as systemd or Kubernetes run it.
 */
import { pino } from 'pino';
import { ConfigError } from '../../proto/config/env.js';
import { loadControlPlaneConfig } from './config.js';
import { startControlPlane } from './control-plane.js';

const log = pino({ name: 'control-plane', level: process.env['LOG_LEVEL'] ?? 'info' });

async function main(): Promise<void> {
  let config;
  try {
    config = loadControlPlaneConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`control-plane: ${err.message}\n`);
      process.exit(78); // EX_CONFIG: systemd shows it as a configuration failure
    }
    throw err;
  }
  log.level = config.logLevel;
  const cp = await startControlPlane(config, log);
  if (config.keyEncryptionKey === undefined) log.warn('KEY_ENCRYPTION_KEY is not set: certificate events will be refused with ENCRYPTION_KEY_MISSING');
  // The key id (never the key) lets an operator check every service holds the same key.
  log.info({ rest: `http://${config.host}:${cp.restPort}`, grpc: `${config.host}:${cp.grpcPort}`, prefix: config.redisPrefix, key_encryption_kid: config.keyEncryptionKey?.kid ?? null }, 'control plane listening');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    cp.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'control plane failed to start');
  process.exit(1);
});

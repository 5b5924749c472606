/**
 * `npm run log-shipper`: configured only by the environment. SIGHUP reopens the log files
 * (logrotate's postrotate); SIGTERM/SIGINT stop accepting, let batches in flight finish,
 * close the backends and exit 0.
 */
import { pino } from 'pino';
import { ConfigError } from '../../proto/config/env.js';
import { loadLogShipperConfig, type LogShipperConfig } from './config.js';
import { createLogShipper } from './log-shipper.js';

const log = pino({ name: 'log-shipper', level: process.env['LOG_LEVEL'] ?? 'info' });

async function main(): Promise<void> {
  let config: LogShipperConfig;
  try {
    config = loadLogShipperConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`log-shipper: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  log.level = config.logLevel;
  const shipper = await createLogShipper(config, log);
  log.info({ address: `${config.host}:${shipper.port}`, backends: config.backends, dir: config.backends.includes('file') ? config.logDir : undefined }, 'log shipper listening');

  process.on('SIGHUP', () => {
    log.info('SIGHUP: reopening');
    shipper.reopen().catch((err: unknown) => log.error({ err }, 'reopen failed'));
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    shipper.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
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
  log.fatal({ err }, 'log shipper failed to start');
  process.exit(1);
});

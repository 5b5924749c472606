/**
 * A real log shipper for tests: in-process on a free port, files under a fresh temporary
 * LOG_DIR that close() removes.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { loadLogShipperConfig, type LogShipperConfig } from '../log-shipper/src/config.js';
import { createLogShipper, type LogShipper, type LogShipperOptions } from '../log-shipper/src/log-shipper.js';

export const SHIPPER_TOKEN = 'shipper-test-token-0123456789';

export interface TestShipper {
  shipper: LogShipper;
  config: LogShipperConfig;
  dir: string;
  port: number;
  base: string;
  /** The app's router.log ('' when it does not exist). */
  read(app: string, suffix?: string): Promise<string>;
  /** A metric's value from /metrics text (summing the series that match `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

export async function startTestShipper(env: Record<string, string> = {}, options: LogShipperOptions & { log?: Logger } = {}): Promise<TestShipper> {
  const dir = await mkdtemp(join(tmpdir(), 'log-shipper-test-'));
  const config = loadLogShipperConfig({
    LOG_SHIPPER_HOST: '127.0.0.1',
    LOG_SHIPPER_PORT: '0',
    LOG_SHIPPER_TOKEN: SHIPPER_TOKEN,
    LOG_DIR: join(dir, 'logs'),
    LOG_LEVEL: 'silent',
    ...env,
  });
  const { log, ...shipperOptions } = options;
  const shipper = await createLogShipper(config, log ?? pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }), shipperOptions);
  return {
    shipper,
    config,
    dir: config.logDir,
    port: shipper.port,
    base: `http://127.0.0.1:${shipper.port}`,
    async read(app, suffix = '') {
      try {
        return await readFile(join(config.logDir, app, `router.log${suffix}`), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
        throw err;
      }
    },
    async metric(name, labels = {}) {
      const text = await shipper.metrics.registry.metrics();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const set = m[2] ?? '';
        if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(m[3]);
      }
      return sum;
    },
    async close() {
      await shipper.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

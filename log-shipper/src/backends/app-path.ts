/**
 * Where an app's lines go: `<LOG_DIR>/<app>/router.log`, and `<LOG_DIR>/_unrouted/router.log`
 * for the lines of requests that never resolved to an app ('_' cannot start an app name, so
 * the two never clash). App names arrive validated by the protocol decoder; they are checked
 * again here, and the resolved path must stay inside LOG_DIR — an app name is the only part
 * of a path that comes from the network.
 */
import path from 'node:path';
import { UNROUTED_SECTION } from '../../../proto/log-batch.js';
import { isValidAppName } from '../../../proto/names.js';

export const UNROUTED_DIR = '_unrouted';
export const LOG_FILE_NAME = 'router.log';

export class InvalidAppPath extends Error {
  override readonly name = 'InvalidAppPath';
}

export interface AppPath {
  /** The directory's name under LOG_DIR: the app, or `_unrouted`. */
  key: string;
  dir: string;
  file: string;
}

export class LogPaths {
  readonly root: string;

  constructor(logDir: string) {
    this.root = path.resolve(logDir);
  }

  /** Throws InvalidAppPath for anything that is not an app name or the unrouted section. */
  of(app: string): AppPath {
    const key = app === UNROUTED_SECTION ? UNROUTED_DIR : app;
    if (app !== UNROUTED_SECTION && !isValidAppName(app)) throw new InvalidAppPath(`not an app name: ${JSON.stringify(app.slice(0, 64))}`);
    const dir = path.join(this.root, key);
    if (path.dirname(dir) !== this.root) throw new InvalidAppPath(`the log directory of ${JSON.stringify(app)} would be outside LOG_DIR`);
    return { key, dir, file: path.join(dir, LOG_FILE_NAME) };
  }
}

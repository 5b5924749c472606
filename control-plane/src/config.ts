/**
 * The control plane's environment, declared once (see proto/config/env.ts).
 */
import { ConfigError, loadConfig, optional, parse, withDefault, type ConfigOf } from '../../proto/config/env.js';
import { sharedProblems, sharedVariables } from '../../proto/config/shared.js';

export const controlPlaneVariables = {
  ...sharedVariables,
  host: withDefault('CONTROL_PLANE_HOST', 'Address the REST and gRPC listeners bind.', parse.string, '127.0.0.1'),
  port: withDefault('CONTROL_PLANE_PORT', 'REST port (0: any free port).', parse.port, 4000),
  grpcPort: withDefault('CONTROL_PLANE_GRPC_PORT', 'gRPC port (0: any free port).', parse.port, 4001),
  tokens: optional('CONTROL_PLANE_TOKENS', 'Comma-separated bearer tokens accepted on /v1 and gRPC.', parse.list, { secret: true }),
  hookSecret: optional('HOOK_SECRET', 'HMAC-SHA256 secret of signed hooks (X-Platform-Signature).', (raw) => {
    if (raw.length < 16) throw new Error('must be at least 16 characters');
    return raw;
  }, { secret: true }),
  idempotencyTtl: withDefault('EVENT_ID_TTL_SECONDS', 'How long an event id is remembered for idempotency.', parse.integer(60, 30 * 86400), 86400),
};

export type ControlPlaneConfig = ConfigOf<typeof controlPlaneVariables>;

export function loadControlPlaneConfig(env: NodeJS.ProcessEnv = process.env): ControlPlaneConfig {
  const config = loadConfig(controlPlaneVariables, env);
  const problems = sharedProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  if ((config.tokens === undefined || config.tokens.length === 0) && config.hookSecret === undefined) {
    throw new ConfigError(['CONTROL_PLANE_TOKENS or HOOK_SECRET must be set: the control plane refuses to run open (npm start generates a development token)']);
  }
  return config;
}

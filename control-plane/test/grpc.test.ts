/**
 * The gRPC front end against a real Redis and the real control plane, through a real
 * grpc-js client built from the same .proto. Where REST has a twin answer, the same event is
 * also sent over REST and both answers must name the same error code and field.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  Metadata,
  credentials,
  loadPackageDefinition,
  status,
  type CallOptions,
  type ClientUnaryCall,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { selfSigned } from '../../test-support/certs.js';
import { TEST_KEY_ENCRYPTION_KEY } from '../../test-support/control-plane.js';
import { deleteByPrefix, redisUrl, uniquePrefix } from '../../test-support/redis.js';
import { loadControlPlaneConfig } from '../src/config.js';
import { startControlPlane, type ControlPlane } from '../src/control-plane.js';
import { CONTROL_PLANE_PROTO, PROTO_LOADER_OPTIONS } from '../src/grpc/grpc-server.js';

const TOKEN = 'test-token-1';
const HOOK_SECRET = 'a-hook-secret-of-enough-length';
const silent = pino({ level: 'silent' });

function configFor(url: string, prefix: string, env: Record<string, string> = {}) {
  return loadControlPlaneConfig({
    REDIS_URL: url,
    REDIS_PREFIX: prefix,
    CONTROL_PLANE_PORT: '0',
    CONTROL_PLANE_GRPC_PORT: '0',
    CONTROL_PLANE_TOKENS: TOKEN,
    HOOK_SECRET,
    KEY_ENCRYPTION_KEY: TEST_KEY_ENCRYPTION_KEY,
    LOG_LEVEL: 'silent',
    ...env,
  });
}

// Built from the .proto independently of the server's own loading, as a client would.
function clientConstructor(): ServiceClientConstructor {
  let node: GrpcObject | ServiceClientConstructor = loadPackageDefinition(loadSync(CONTROL_PLANE_PROTO, PROTO_LOADER_OPTIONS));
  for (const part of ['router', 'controlplane', 'v1', 'ControlPlane']) {
    const next: unknown = (node as GrpcObject)[part];
    assert.ok(next !== undefined, `the .proto has no ${part}`);
    node = next as GrpcObject | ServiceClientConstructor;
  }
  assert.equal(typeof node, 'function');
  return node as ServiceClientConstructor;
}

const ControlPlaneClient = clientConstructor();
type ServiceClient = InstanceType<ServiceClientConstructor>;

type Method = 'ApplyEvent' | 'GetApp' | 'ResolveHost';
type UnaryMethod = (request: object, metadata: Metadata, options: CallOptions, callback: (err: ServiceError | null, reply?: Record<string, unknown>) => void) => ClientUnaryCall;

interface Auth {
  token?: string;
  signature?: string;
}

function metadataFor(auth: Auth): Metadata {
  const md = new Metadata();
  if (auth.token !== undefined) md.set('authorization', `Bearer ${auth.token}`);
  if (auth.signature !== undefined) md.set('x-platform-signature', auth.signature);
  return md;
}

function call(client: ServiceClient, method: Method, request: object, auth: Auth = { token: TOKEN }): Promise<Record<string, unknown>> {
  const fn = client[method] as UnaryMethod;
  return new Promise((resolve, reject) => {
    fn.call(client, request, metadataFor(auth), { deadline: Date.now() + 5000 }, (err, reply) => (err ? reject(err) : resolve(reply ?? {})));
  });
}

async function expectError(pending: Promise<unknown>, code: status, errorCode: string, field?: string): Promise<ServiceError> {
  let caught: unknown;
  try {
    await pending;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Error, `expected ${errorCode}, the call succeeded`);
  const err = caught as ServiceError;
  assert.equal(err.code, code, `status ${status[err.code]} (${err.details}), expected ${status[code]}`);
  assert.deepEqual(err.metadata.get('error-code'), [errorCode], err.details);
  assert.ok(err.details.startsWith(`${errorCode}: `), err.details);
  if (field !== undefined) assert.deepEqual(err.metadata.get('error-field'), [field], err.details);
  return err;
}

function sign(bytes: Buffer, timestamp = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', HOOK_SECRET).update(`${timestamp}.`).update(bytes).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

const c1 = { id: 'web-1', host: '10.0.9.1', port: 31000 };
const c2 = { id: 'web-2', host: 'node-2.internal', port: 31001 };

let eventCounter = 0;
function eventId(label: string): string {
  eventCounter += 1;
  return `grpc-${label}-${eventCounter}`;
}

describe('gRPC front end', () => {
  const prefix = uniquePrefix('grpc');
  let cp: ControlPlane;
  let client: ServiceClient;
  let redis: Redis;

  before(async () => {
    redis = new Redis(redisUrl());
    cp = await startControlPlane(configFor(redisUrl(), prefix), silent);
    client = new ControlPlaneClient(`127.0.0.1:${cp.grpcPort}`, credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await cp?.close();
    if (redis !== undefined) {
      await deleteByPrefix(redis, prefix);
      await redis.quit();
    }
  });

  /** The REST answer to the same JSON event, for parity checks. */
  async function restError(body: Record<string, unknown>): Promise<{ status: number; code: string; field?: string }> {
    const res = await fetch(`http://127.0.0.1:${cp.restPort}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { code: string; field?: string };
    return { status: res.status, ...json };
  }

  async function expectParity(event: Record<string, unknown>, code: status, errorCode: string, field: string): Promise<ServiceError> {
    const err = await expectError(call(client, 'ApplyEvent', event), code, errorCode, field);
    const rest = await restError(event);
    assert.equal(rest.code, errorCode, 'REST answers the same code');
    assert.equal(rest.field, field, 'REST names the same field');
    return err;
  }

  test('deploy is applied and GetApp shows the containers', async () => {
    const reply = await call(client, 'ApplyEvent', { id: eventId('deploy'), app: 'alpha', seq: 1, type: 'deploy', containers: [c1, c2] });
    assert.equal(reply['applied'], true);
    assert.equal(typeof reply['version'], 'number');
    assert.notEqual(reply['duplicate'], true);

    const app = await call(client, 'GetApp', { app: 'alpha' });
    assert.equal(app['app'], 'alpha');
    assert.equal(app['status'], 'running');
    assert.equal(app['seq'], 1);
    assert.equal(app['version'], reply['version']);
    assert.deepEqual(app['containers'], [c1, c2]);
    assert.deepEqual(app['hostnames'], ['alpha.localhost']);
    const settings = app['settings'] as Record<string, unknown>;
    assert.equal(settings['force_https'], false, 'the effective settings are all set, false included');
    assert.equal(settings['balancer'], 'p2c');
    assert.equal(settings['hsts_max_age'], 0);
  });

  test('settings: only the fields set are changed', async () => {
    await call(client, 'ApplyEvent', { id: eventId('settings'), app: 'sigma', seq: 1, type: 'deploy', containers: [c1], settings: { hsts_max_age: 600, balancer: 'round_robin' } });
    await call(client, 'ApplyEvent', { id: eventId('settings'), app: 'sigma', seq: 2, type: 'restart', containers: [c1], settings: { force_https: true } });
    const settings = (await call(client, 'GetApp', { app: 'sigma' }))['settings'] as Record<string, unknown>;
    assert.equal(settings['force_https'], true);
    assert.equal(settings['hsts_max_age'], 600);
    assert.equal(settings['balancer'], 'round_robin');
    assert.equal(settings['sticky_sessions'], false);
  });

  test('ResolveHost of <app>.localhost', async () => {
    await call(client, 'ApplyEvent', { id: eventId('resolve'), app: 'beta', seq: 1, type: 'deploy', containers: [c2] });
    const route = await call(client, 'ResolveHost', { hostname: 'Beta.Localhost.' });
    assert.equal(route['hostname'], 'beta.localhost');
    assert.equal(route['matched'], 'beta.localhost');
    assert.equal(route['app'], 'beta');
    assert.equal(route['status'], 'running');
    assert.deepEqual(route['containers'], [c2]);
    assert.equal(route['certificate_domain'] ?? '', '', 'no certificate: empty');
    await expectError(call(client, 'ResolveHost', { hostname: 'nobody.localhost' }), status.NOT_FOUND, 'ROUTE_NOT_FOUND');
    await expectError(call(client, 'ResolveHost', { hostname: 'not a host' }), status.INVALID_ARGUMENT, 'INVALID_FIELD', 'hostname');
  });

  test('a repeated event id answers duplicate with the first version', async () => {
    const event = { id: eventId('dup'), app: 'gamma', seq: 1, type: 'deploy', containers: [c1] };
    const first = await call(client, 'ApplyEvent', event);
    const again = await call(client, 'ApplyEvent', event);
    assert.equal(again['applied'], true);
    assert.equal(again['duplicate'], true);
    assert.equal(again['version'], first['version']);
    await expectError(call(client, 'ApplyEvent', { ...event, containers: [c2] }), status.ALREADY_EXISTS, 'IDEMPOTENCY_KEY_REUSED', 'id');
  });

  test('a stale seq is FAILED_PRECONDITION / STALE_EVENT', async () => {
    await call(client, 'ApplyEvent', { id: eventId('stale'), app: 'delta', seq: 5, type: 'deploy', containers: [c1] });
    await expectParity({ id: eventId('stale'), app: 'delta', seq: 5, type: 'scale', containers: [c2] }, status.FAILED_PRECONDITION, 'STALE_EVENT', 'seq');
    await expectError(call(client, 'ApplyEvent', { id: eventId('stale'), app: 'delta', seq: 4, type: 'stop' }), status.FAILED_PRECONDITION, 'STALE_EVENT', 'seq');
  });

  test('a domain owned by another app is ALREADY_EXISTS / DOMAIN_TAKEN', async () => {
    await call(client, 'ApplyEvent', { id: eventId('taken'), app: 'owner', seq: 1, type: 'domains', domains: ['shop.taken.test'] });
    await expectError(
      call(client, 'ApplyEvent', { id: eventId('taken'), app: 'thief', seq: 1, type: 'domains', domains: ['www.thief.test', 'shop.taken.test'] }),
      status.ALREADY_EXISTS,
      'DOMAIN_TAKEN',
    );
    await expectParity({ id: eventId('taken'), app: 'thief', seq: 1, type: 'domains', domains: ['x.localhost'] }, status.ALREADY_EXISTS, 'DOMAIN_TAKEN', 'domains[0]');
    const route = await call(client, 'ResolveHost', { hostname: 'shop.taken.test' });
    assert.equal(route['app'], 'owner');
  });

  test('an empty domains list on a domains event detaches every domain', async () => {
    await call(client, 'ApplyEvent', { id: eventId('detach'), app: 'epsilon', seq: 1, type: 'domains', domains: ['www.epsilon.test'] });
    assert.deepEqual((await call(client, 'GetApp', { app: 'epsilon' }))['domains'], ['www.epsilon.test']);
    await call(client, 'ApplyEvent', { id: eventId('detach'), app: 'epsilon', seq: 2, type: 'domains', domains: [] });
    const app = await call(client, 'GetApp', { app: 'epsilon' });
    assert.deepEqual(app['domains'] ?? [], []);
    await expectError(call(client, 'ResolveHost', { hostname: 'www.epsilon.test' }), status.NOT_FOUND, 'ROUTE_NOT_FOUND');
  });

  test('invalid fields are INVALID_ARGUMENT / INVALID_FIELD naming the field, as over REST', async () => {
    await expectParity({ id: eventId('invalid'), app: 'Bad_App', seq: 1, type: 'deploy', containers: [c1] }, status.INVALID_ARGUMENT, 'INVALID_FIELD', 'app');
    await expectParity({ id: eventId('invalid'), app: 'zeta', seq: 1, type: 'deploy', containers: [{ id: 'w', host: '10.0.0.1', port: 0 }] }, status.INVALID_ARGUMENT, 'INVALID_FIELD', 'containers[0].port');
    await expectParity({ id: eventId('invalid'), app: 'zeta', seq: 1, type: 'launch' }, status.INVALID_ARGUMENT, 'INVALID_FIELD', 'type');
    await expectParity({ id: eventId('invalid'), app: 'zeta', seq: 1, type: 'stop', settings: { balancer: 'random' } }, status.INVALID_ARGUMENT, 'INVALID_FIELD', 'settings.balancer');
    // proto3 has no "absent" string or number: unset scalars are refused as their zero value.
    await expectError(call(client, 'ApplyEvent', { app: 'zeta', seq: 1, type: 'stop' }), status.INVALID_ARGUMENT, 'INVALID_FIELD', 'id');
    await expectError(call(client, 'ApplyEvent', { id: eventId('invalid'), app: 'zeta', type: 'stop' }), status.INVALID_ARGUMENT, 'INVALID_FIELD', 'seq');
    await expectError(call(client, 'GetApp', { app: 'Not An App' }), status.INVALID_ARGUMENT, 'INVALID_FIELD', 'app');
    await expectError(call(client, 'GetApp', { app: 'zeta' }), status.NOT_FOUND, 'APP_NOT_FOUND');
  });

  test('containers: required on deploy, refused on other types, as over REST', async () => {
    const missing = await expectParity({ id: eventId('containers'), app: 'eta', seq: 1, type: 'deploy' }, status.INVALID_ARGUMENT, 'INVALID_FIELD', 'containers');
    assert.match(missing.details, /is required/);
    const empty = await expectError(call(client, 'ApplyEvent', { id: eventId('containers'), app: 'eta', seq: 1, type: 'scale', containers: [] }), status.INVALID_ARGUMENT, 'INVALID_FIELD', 'containers');
    assert.match(empty.details, /is required/, 'an empty list is an absent one in proto3');
    const extra = await expectParity({ id: eventId('containers'), app: 'eta', seq: 1, type: 'stop', containers: [c1] }, status.INVALID_ARGUMENT, 'INVALID_FIELD', 'containers');
    assert.match(extra.details, /is not allowed/);
    await expectParity({ id: eventId('containers'), app: 'eta', seq: 1, type: 'deploy', containers: [c1], domains: ['www.eta.test'] }, status.INVALID_ARGUMENT, 'INVALID_FIELD', 'domains');
    await expectError(call(client, 'GetApp', { app: 'eta' }), status.NOT_FOUND, 'APP_NOT_FOUND');
  });

  test('an unknown app is NOT_FOUND / APP_NOT_FOUND', async () => {
    await expectError(call(client, 'GetApp', { app: 'never-created' }), status.NOT_FOUND, 'APP_NOT_FOUND');
  });

  test('calls without valid credentials are UNAUTHENTICATED', async () => {
    const event = { id: eventId('auth'), app: 'theta', seq: 1, type: 'deploy', containers: [c1] };
    await expectError(call(client, 'ApplyEvent', event, {}), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    await expectError(call(client, 'GetApp', { app: 'alpha' }, {}), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    await expectError(call(client, 'ApplyEvent', event, { token: 'not-the-token' }), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    await expectError(call(client, 'ApplyEvent', event, { signature: 'sha256=deadbeef' }), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    await expectError(call(client, 'ApplyEvent', event, { signature: sign(Buffer.from('x'), Math.floor(Date.now() / 1000) - 3600) }), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    await expectError(call(client, 'GetApp', { app: 'theta' }), status.NOT_FOUND, 'APP_NOT_FOUND');
  });

  test('HMAC-signed calls: the serialized bytes, once', async () => {
    const serialize = ControlPlaneClient.service['ApplyEvent']!.requestSerialize;
    const event = { id: eventId('signed'), app: 'iota', seq: 1, type: 'deploy', containers: [c1] };
    const signature = sign(serialize(event));

    const reply = await call(client, 'ApplyEvent', event, { signature });
    assert.equal(reply['applied'], true);
    assert.deepEqual((await call(client, 'GetApp', { app: 'iota' }))['containers'], [c1]);

    const other = { ...event, id: eventId('signed'), seq: 2 };
    const forged = await expectError(call(client, 'ApplyEvent', other, { signature: sign(serialize(event)) }), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    assert.match(forged.details, /does not match/);

    const replayed = await expectError(call(client, 'ApplyEvent', event, { signature }), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    assert.match(replayed.details, /already used/);

    const getApp = ControlPlaneClient.service['GetApp']!.requestSerialize;
    const app = await call(client, 'GetApp', { app: 'iota' }, { signature: sign(getApp({ app: 'iota' })) });
    assert.equal(app['app'], 'iota', 'reads can be signed too');
  });

  test('certificates: attached after a domains event, listed without the key', async () => {
    const tls = await selfSigned({ sans: ['www.example.com'] });
    await call(client, 'ApplyEvent', { id: eventId('cert'), app: 'kappa', seq: 1, type: 'deploy', containers: [c1] });
    await call(client, 'ApplyEvent', { id: eventId('cert'), app: 'kappa', seq: 2, type: 'domains', domains: ['www.example.com'] });
    const reply = await call(client, 'ApplyEvent', {
      id: eventId('cert'),
      app: 'kappa',
      seq: 3,
      type: 'certificate',
      certificate: { domain: 'www.example.com', cert: tls.chainPem, key: tls.keyPem },
    });
    assert.equal(reply['applied'], true);

    const app = await call(client, 'GetApp', { app: 'kappa' });
    const certificates = app['certificates'] as Array<Record<string, unknown>>;
    assert.equal(certificates.length, 1);
    const [cert] = certificates;
    assert.equal(cert?.['domain'], 'www.example.com');
    assert.match(String(cert?.['fingerprint256']), /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.ok(Number.isFinite(Date.parse(String(cert?.['not_after']))));
    assert.ok(typeof cert?.['expires_in_days'] === 'number' && cert['expires_in_days'] >= 88 && cert['expires_in_days'] <= 90);
    assert.ok(!JSON.stringify(app).includes('PRIVATE KEY'), 'the App message carries no private key');

    const route = await call(client, 'ResolveHost', { hostname: 'www.example.com' });
    assert.equal(route['certificate_domain'], 'www.example.com');

    await expectParity(
      { id: eventId('cert'), app: 'kappa', seq: 4, type: 'certificate', certificate: { domain: 'www.example.com', remove: true, key: tls.keyPem } },
      status.INVALID_ARGUMENT,
      'INVALID_FIELD',
      'certificate',
    );
    const unattached = await selfSigned({ sans: ['api.example.com'] });
    await expectError(
      call(client, 'ApplyEvent', { id: eventId('cert'), app: 'kappa', seq: 4, type: 'certificate', certificate: { domain: 'api.example.com', cert: unattached.chainPem, key: unattached.keyPem } }),
      status.FAILED_PRECONDITION,
      'DOMAIN_NOT_ATTACHED',
      'certificate.domain',
    );
    await call(client, 'ApplyEvent', { id: eventId('cert'), app: 'kappa', seq: 5, type: 'certificate', certificate: { domain: 'www.example.com', remove: true } });
    assert.deepEqual((await call(client, 'GetApp', { app: 'kappa' }))['certificates'] ?? [], []);
  });

  test('without KEY_ENCRYPTION_KEY a certificate is FAILED_PRECONDITION / ENCRYPTION_KEY_MISSING, nothing written', async () => {
    const noKeyPrefix = uniquePrefix('grpc-nokey');
    const noKey = await startControlPlane(configFor(redisUrl(), noKeyPrefix, { KEY_ENCRYPTION_KEY: '' }), silent);
    const noKeyClient = new ControlPlaneClient(`127.0.0.1:${noKey.grpcPort}`, credentials.createInsecure());
    try {
      const tls = await selfSigned({ sans: ['www.nokey.test'] });
      await call(noKeyClient, 'ApplyEvent', { id: eventId('nokey'), app: 'mu', seq: 1, type: 'deploy', containers: [c1] });
      await call(noKeyClient, 'ApplyEvent', { id: eventId('nokey'), app: 'mu', seq: 2, type: 'domains', domains: ['www.nokey.test'] });
      const err = await expectError(
        call(noKeyClient, 'ApplyEvent', { id: eventId('nokey'), app: 'mu', seq: 3, type: 'certificate', certificate: { domain: 'www.nokey.test', cert: tls.chainPem, key: tls.keyPem } }),
        status.FAILED_PRECONDITION,
        'ENCRYPTION_KEY_MISSING',
      );
      assert.ok(!err.details.includes(tls.keyPem.split('\n')[2]!), 'no key material in the error');
      assert.equal(await redis.get(`${noKeyPrefix}cert:www.nokey.test`), null);
    } finally {
      noKeyClient.close();
      await noKey.close();
      await deleteByPrefix(redis, noKeyPrefix);
    }
  });

  test('bytes that are no Event are refused by grpc-js, and the server keeps serving', async () => {
    // seq's varint cut short: protobufjs refuses it (it lets a truncated string through).
    const garbage = Buffer.from([0x18, 0xff]);
    const raw = (request: Buffer, auth: Auth): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const identity = (b: Buffer): Buffer => b;
        client.makeUnaryRequest('/router.controlplane.v1.ControlPlane/ApplyEvent', identity, identity, request, metadataFor(auth), { deadline: Date.now() + 5000 }, (err, reply) =>
          err ? reject(err) : resolve(reply ?? Buffer.alloc(0)),
        );
      });
    const tokenErr = await raw(garbage, { token: TOKEN }).then(() => null, (err: ServiceError) => err);
    assert.equal(tokenErr?.code, status.INTERNAL, 'grpc-js answers a message it cannot decode');
    const signedErr = await raw(garbage, { signature: sign(garbage) }).then(() => null, (err: ServiceError) => err);
    assert.equal(signedErr?.code, status.INTERNAL);
    const app = await call(client, 'GetApp', { app: 'alpha' });
    assert.equal(app['app'], 'alpha');
  });

  test('Redis unreachable is UNAVAILABLE / STORE_UNAVAILABLE within 2 s', async () => {
    // Nothing listens on port 1: every command fails at once rather than queueing.
    const down = await startControlPlane(configFor('redis://127.0.0.1:1', uniquePrefix('grpc-down')), silent);
    const downClient = new ControlPlaneClient(`127.0.0.1:${down.grpcPort}`, credentials.createInsecure());
    try {
      const started = Date.now();
      await expectError(
        call(downClient, 'ApplyEvent', { id: eventId('down'), app: 'lambda', seq: 1, type: 'deploy', containers: [c1] }),
        status.UNAVAILABLE,
        'STORE_UNAVAILABLE',
      );
      await expectError(call(downClient, 'GetApp', { app: 'lambda' }), status.UNAVAILABLE, 'STORE_UNAVAILABLE');
      assert.ok(Date.now() - started < 2000, `answered after ${Date.now() - started} ms`);
      // The replay claim is a Redis write too: a signed call is refused as the store's failure.
      const serialize = ControlPlaneClient.service['GetApp']!.requestSerialize;
      await expectError(call(downClient, 'GetApp', { app: 'lambda' }, { signature: sign(serialize({ app: 'lambda' })) }), status.UNAVAILABLE, 'STORE_UNAVAILABLE');
    } finally {
      downClient.close();
      await down.close();
    }
  });
});

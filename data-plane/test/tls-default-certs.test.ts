import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { pino } from 'pino';
import { ConfigError } from '../../proto/config/env.js';
import { sourcePath } from '../../proto/source-path.js';
import { createTestCa, type TestCa, type TestCert } from '../../test-support/certs.js';
import { startHarness, TEST_KEY_ENCRYPTION_KEY, type Harness } from '../../test-support/control-plane.js';
import { redisUrl } from '../../test-support/redis.js';
import { eventually, startUpstream, type Upstream } from '../../test-support/router.js';
import { tlsHandshake } from '../../test-support/tls-client.js';
import { loadRouterConfig } from '../src/config.js';
import { startRouter, type Router } from '../src/router.js';
import { loadDefaultCerts, type CertFiles } from '../src/tls/default-certs.js';

const PLATFORM = 'apps.files.test';
const CUSTOM = 'www.custom-files.test';

let dir: string;
let ca: TestCa;
let h: Harness;
let router: Router;
let web: Upstream;
const certs: Record<'default' | 'platform' | 'custom' | 'stranger', TestCert> = {} as never;
const files: Record<string, string> = {};

const fingerprint = (cert: TestCert): string => new X509Certificate(cert.certPem).fingerprint256;

async function write(name: string, content: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content, { mode: 0o600 });
  files[name] = file;
  return file;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'router-cert-files-'));
  ca = await createTestCa();
  certs.default = await ca.issue({ sans: ['default.files.test'], keyType: 'rsa', commonName: 'files default' });
  certs.platform = await ca.issue({ sans: [`*.${PLATFORM}`], keyType: 'ec' });
  certs.custom = await ca.issue({ sans: [CUSTOM], keyType: 'ec' });
  certs.stranger = await ca.issue({ sans: ['stranger.files.test'], keyType: 'rsa' });
  await write('default.crt', certs.default.chainPem);
  await write('default.key', certs.default.keyPem);
  await write('platform.crt', certs.platform.chainPem);
  await write('platform.key', certs.platform.keyPem);
  await write('stranger.key', certs.stranger.keyPem);
  await write('garbage.pem', 'this is not PEM at all\n');

  h = await startHarness('cert-files', { PLATFORM_DOMAIN: PLATFORM });
  const config = loadRouterConfig({
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: h.prefix,
    ROUTER_HOST: '127.0.0.1',
    ROUTER_WORKERS: '1',
    KEY_ENCRYPTION_KEY: TEST_KEY_ENCRYPTION_KEY,
    PLATFORM_DOMAIN: PLATFORM,
    ROUTER_DEFAULT_CERT: files['default.crt'],
    ROUTER_DEFAULT_KEY: files['default.key'],
    ROUTER_PLATFORM_CERT: files['platform.crt'],
    ROUTER_PLATFORM_KEY: files['platform.key'],
    LOG_LEVEL: 'silent',
  });
  router = await startRouter(config, pino({ level: 'silent' }), { accessLog: () => undefined, port: 0, httpsPort: 0 });
  web = await startUpstream('web');
  assert.equal((await h.deploy('shop', [web.container])).status, 200);
  assert.equal((await h.send({ app: 'shop', type: 'domains', domains: [CUSTOM] })).status, 200);
  const r = await h.send({ app: 'shop', type: 'certificate', certificate: { domain: CUSTOM, cert: certs.custom.chainPem, key: certs.custom.keyPem } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

after(async () => {
  await router.close();
  await h.close();
  await web.close();
  await rm(dir, { recursive: true, force: true });
});

function httpsGet(servername: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: router.httpsPort, path: '/', servername, headers: { host }, ca: [ca.certPem], agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as tls.SecureVersion[]) {
  test(`${maxVersion}: the certificates from files and from Redis, each for its names`, async () => {
    const served = async (servername: string | undefined): Promise<string> => (await tlsHandshake(router.httpsPort, { servername, maxVersion })).fingerprint;
    assert.equal(await served(undefined), fingerprint(certs.default), 'no SNI: ROUTER_DEFAULT_CERT');
    assert.equal(await served('nobody.files.test'), fingerprint(certs.default), 'unknown SNI: ROUTER_DEFAULT_CERT');
    assert.equal(await served(`shop.${PLATFORM}`), fingerprint(certs.platform), '<app>.<PLATFORM_DOMAIN>: ROUTER_PLATFORM_CERT');
    assert.equal(await served(`deep.shop.${PLATFORM}`), fingerprint(certs.default), 'two labels under the platform domain: not a platform name');
    await eventually(async () => (await served(CUSTOM)) === fingerprint(certs.custom), 2000, 10);
    // Verified against the CA for the name asked, as a browser would.
    for (const name of [`shop.${PLATFORM}`, CUSTOM]) await tlsHandshake(router.httpsPort, { servername: name, maxVersion, ca: [ca.certPem] });
  });
}

test('requests over TLS are routed by Host under each certificate', async () => {
  for (const [servername, host] of [
    [`shop.${PLATFORM}`, `shop.${PLATFORM}`],
    [CUSTOM, CUSTOM],
  ] as const) {
    const res = await httpsGet(servername, host);
    assert.equal(res.status, 200, host);
    assert.equal(res.body, 'web GET /');
  }
});

/** The ConfigError loadDefaultCerts throws for these files. */
function problem(overrides: Partial<CertFiles>): string {
  const base: CertFiles = { defaultCertFile: files['default.crt'], defaultKeyFile: files['default.key'], platformCertFile: files['platform.crt'], platformKeyFile: files['platform.key'] };
  try {
    loadDefaultCerts({ ...base, ...overrides });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  throw new Error('the files were accepted');
}

test('bad files stop the start with a message naming the variable, never the key', () => {
  const missing = path.join(dir, 'missing.pem');
  assert.match(problem({ defaultCertFile: missing }), /ROUTER_DEFAULT_CERT: cannot read .*missing\.pem \(ENOENT\)/);
  assert.match(problem({ defaultKeyFile: missing }), /ROUTER_DEFAULT_KEY: cannot read .*missing\.pem \(ENOENT\)/);
  assert.match(problem({ platformCertFile: missing }), /ROUTER_PLATFORM_CERT: cannot read/);
  assert.match(problem({ defaultCertFile: files['garbage.pem'] }), /ROUTER_DEFAULT_CERT: .*garbage\.pem is not a PEM certificate/);
  assert.match(problem({ defaultKeyFile: files['garbage.pem'] }), /ROUTER_DEFAULT_KEY: .*garbage\.pem is not an unencrypted PEM private key/);
  // Swapped: the key file where the certificate goes.
  assert.match(problem({ platformCertFile: files['platform.key'], platformKeyFile: files['platform.crt'] }), /ROUTER_PLATFORM_CERT: .*platform\.key is not a PEM certificate/);
  const mismatch = problem({ defaultKeyFile: files['stranger.key'] });
  assert.match(mismatch, /ROUTER_DEFAULT_CERT \/ ROUTER_DEFAULT_KEY: the key in .*stranger\.key does not match the certificate in .*default\.crt/);
  assert.match(problem({ platformKeyFile: files['stranger.key'] }), /ROUTER_PLATFORM_CERT \/ ROUTER_PLATFORM_KEY: the key in .*stranger\.key does not match/);
  const keyLines = [certs.default.keyPem, certs.stranger.keyPem, certs.platform.keyPem].flatMap((pem) => pem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----')));
  for (const line of keyLines) assert.ok(!mismatch.includes(line));
});

/** Runs the router binary; it must refuse to start before touching Redis. */
function runRouter(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [sourcePath(import.meta.url, '..', '..', 'dist', 'data-plane', 'src', 'main.js')], {
      env: { ...process.env, REDIS_URL: redisUrl(), ROUTER_HOST: '127.0.0.1', ROUTER_HTTP_PORT: '0', ROUTER_HTTPS_PORT: '1', ROUTER_ADMIN_PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the router did not exit; stderr: ${stderr}`));
    }, 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

test('the router process exits 78 naming the variable, single process or cluster primary (no crash loop)', async () => {
  const single = await runRouter({ ROUTER_WORKERS: '1', ROUTER_DEFAULT_CERT: path.join(dir, 'missing.pem'), ROUTER_DEFAULT_KEY: files['default.key']! });
  assert.equal(single.code, 78, single.stderr);
  assert.match(single.stderr, /ROUTER_DEFAULT_CERT: cannot read/);
  const cluster = await runRouter({ ROUTER_WORKERS: '2', ROUTER_PLATFORM_CERT: files['platform.crt']!, ROUTER_PLATFORM_KEY: files['stranger.key']! });
  assert.equal(cluster.code, 78, cluster.stderr);
  assert.match(cluster.stderr, /ROUTER_PLATFORM_CERT \/ ROUTER_PLATFORM_KEY: the key in .* does not match/);
  assert.ok(!cluster.stdout.includes('router worker'), 'no worker was started');
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { pino } from 'pino';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import { createTestCa, type TestCa, type TestCert } from '../../test-support/certs.js';
import { eventually, startStack, startUpstream, type Stack, type Upstream } from '../../test-support/router.js';
import type { CertSource } from '../src/tls/cert-store.js';

let s: Stack;
let ca: TestCa;
let web: Upstream;
const logText: string[] = [];
/** Redis lookups the SNI callback made, by name. */
const lookups: string[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Flood names are slow to look up, so a handshake for a cached name must overtake them.
const countingSource = (inner: CertSource): CertSource => ({
  async find(name) {
    lookups.push(name);
    if (name.includes('flood')) await sleep(400);
    return inner.find(name);
  },
});

before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText.push(chunk.toString());
      done();
    },
  });
  s = await startStack('tls', { CERT_NEGATIVE_TTL: '60000' }, { log: pino({ level: 'trace' }, sink), wrapCertSource: countingSource });
  ca = await createTestCa();
  web = await startUpstream('web');
  assert.equal((await s.h.deploy('shop', [web.container])).status, 200);
});

after(async () => {
  await s.close();
  await web.close();
});

const fingerprintOf = (cert: TestCert): string => new X509Certificate(cert.certPem).fingerprint256;

/** `domains` events replace the whole set (and a removed domain loses its certificate): keep adding. */
const shopDomains: string[] = [];
async function addDomains(...names: string[]): Promise<void> {
  shopDomains.push(...names);
  const r = await s.h.send({ app: 'shop', type: 'domains', domains: shopDomains });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

async function setCert(app: string, domain: string, cert: TestCert): Promise<void> {
  const r = await s.h.send({ app, type: 'certificate', certificate: { domain, cert: cert.chainPem, key: cert.keyPem } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

/** One handshake; the server certificate's fingerprint and subject CN. */
function handshake(servername: string | undefined, options: tls.ConnectionOptions = {}): Promise<{ fingerprint: string; cn: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: s.router.httpsPort, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false, ...options }, () => {
      const peer = socket.getPeerCertificate();
      const result = { fingerprint: peer.fingerprint256, cn: String(peer.subject?.CN ?? ''), protocol: socket.getProtocol() ?? '' };
      // end, not destroy: with TLS 1.3 the server completes after our Finished; a reset would count as a failed handshake.
      socket.end();
      socket.once('close', () => resolve(result));
    });
    socket.resume();
    socket.once('error', reject);
  });
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** GET over TLS; verifies the chain against the test CA unless `insecure`. */
function httpsGet(servername: string | undefined, host: string, opts: { insecure?: boolean; agent?: https.Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: s.router.httpsPort,
        path: '/',
        headers: { host },
        ...(servername === undefined ? {} : { servername }),
        ca: [ca.certPem],
        rejectUnauthorized: opts.insecure !== true,
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

test('each SNI name gets its own certificate (ECDSA and RSA), verified against the CA, and the request is proxied as https', async () => {
  const names = ['a.multi.test', 'b.multi.test', 'c.multi.test', 'd.other.test', 'e.other.test'];
  await addDomains(...names);
  const certs = new Map<string, TestCert>();
  for (const [i, name] of names.entries()) {
    const cert = await ca.issue({ sans: [name], keyType: i % 2 === 0 ? 'ec' : 'rsa' });
    certs.set(name, cert);
    await setCert('shop', name, cert);
  }
  for (const name of names) {
    assert.equal((await handshake(name)).fingerprint, fingerprintOf(certs.get(name)!), name);
    const reply = await httpsGet(name, name);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'web GET /');
    assert.equal(web.last?.headers['x-forwarded-proto'], 'https');
    assert.equal(web.last?.headers['x-forwarded-port'], String(s.router.httpsPort));
  }
  // TLS 1.2 as well as 1.3.
  assert.equal((await handshake('a.multi.test', { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
  assert.equal((await handshake('a.multi.test')).protocol, 'TLSv1.3');
  // Not TLS at all: a failed handshake.
  await new Promise<void>((resolve) => {
    const raw = net.connect(s.router.httpsPort, '127.0.0.1', () => raw.end('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
    raw.on('close', () => resolve());
    raw.on('error', () => resolve());
    raw.resume();
  });
  const text = await s.router.metrics.registry.metrics();
  assert.ok(metric(text, 'router_tls_handshakes_total', '{outcome="ok"}') >= names.length * 2, text.split('\n').filter((l) => l.includes('tls')).join('\n'));
  assert.ok(metric(text, 'router_tls_handshakes_total', '{outcome="error"}') >= 1);
  assert.ok(metric(text, 'router_cert_cache_total', '{result="hit"}') >= names.length);
  const days = metric(text, 'router_cert_expiry_days', '{domain="a.multi.test"}');
  assert.ok(days >= 88 && days <= 90, `expiry days ${days}`);
});

test('a wildcard certificate answers every name one label under it', async () => {
  await addDomains('*.wild.test');
  const wild = await ca.issue({ sans: ['*.wild.test'] });
  await setCert('shop', '*.wild.test', wild);
  for (const name of ['x.wild.test', 'y.wild.test']) {
    assert.equal((await handshake(name)).fingerprint, fingerprintOf(wild));
    assert.equal((await httpsGet(name, name)).status, 200);
  }
  const text = await s.router.metrics.registry.metrics();
  assert.ok(metric(text, 'router_cert_expiry_days', '{domain="*.wild.test"}') > 0);
});

test('unknown SNI and no SNI get the default certificate, and the request is still routed by Host', async () => {
  const unknown = await handshake('nobody.unknown.test');
  assert.equal(unknown.cn, 'platform-router default');
  const noSni = await handshake(undefined);
  assert.equal(noSni.cn, 'platform-router default');
  assert.equal(noSni.fingerprint, unknown.fingerprint);
  const routed = await httpsGet('nobody.unknown.test', 'shop.localhost', { insecure: true });
  assert.equal(routed.status, 200);
  assert.equal(routed.body, 'web GET /');
  // The platform name: default certificate too (no ROUTER_PLATFORM_CERT), and no Redis lookup.
  const before = lookups.length;
  assert.equal((await handshake('shop.localhost')).cn, 'platform-router default');
  assert.equal(lookups.length, before);
});

test('rotation: a new handshake sees the new certificate within milliseconds while an open connection keeps working', async () => {
  const name = 'rot.rotate.test';
  await addDomains(name);
  const first = await ca.issue({ sans: [name] });
  const second = await ca.issue({ sans: [name], keyType: 'rsa' });
  await setCert('shop', name, first);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    assert.equal((await httpsGet(name, name, { agent })).status, 200);
    assert.equal((await handshake(name)).fingerprint, fingerprintOf(first));
    await setCert('shop', name, second);
    const took = await eventually(async () => (await handshake(name)).fingerprint === fingerprintOf(second), 2000, 2);
    assert.ok(took < 1000, `new certificate served after ${took} ms`);
    const again = await httpsGet(name, name, { agent });
    assert.equal(again.status, 200);
    assert.equal(sockets.size, 1, 'the keep-alive connection was reused, not re-made');
    const [open] = [...sockets] as tls.TLSSocket[];
    assert.equal(open!.getPeerCertificate().fingerprint256, fingerprintOf(first), 'the open connection keeps its certificate');

    // Removal: back to the default certificate.
    assert.equal((await s.h.send({ app: 'shop', type: 'certificate', certificate: { domain: name, remove: true } })).status, 200);
    await eventually(async () => (await handshake(name)).cn === 'platform-router default', 2000, 2);
  } finally {
    agent.destroy();
  }
});

test('a flood of random SNI names costs one lookup each, then none, and never delays a cached name', async () => {
  const known = 'a.multi.test';
  await handshake(known); // cached
  const tag = randomBytes(4).toString('hex');
  const names = Array.from({ length: 1000 }, (_, i) => `n${i}.flood${tag}.test`);
  const before = lookups.length;
  const metricsBefore = metric(await s.router.metrics.registry.metrics(), 'router_cert_lookups_total', '{outcome="not_found"}');

  const flood = async (): Promise<void> => {
    // 100 at a time: a test process cannot open 1000 TLS connections at once cheaply.
    for (let i = 0; i < names.length; i += 100) await Promise.all(names.slice(i, i + 100).map((n) => handshake(n)));
  };
  let floodDone = false;
  const running = flood().then(() => {
    floodDone = true;
  });
  await sleep(50);
  // Not a timing: the cached name's handshake must finish while the flood still waits on its lookups.
  assert.equal((await handshake(known)).cn, known);
  assert.equal(floodDone, false, 'the cached name completed while the flood was still waiting on lookups');
  await running;

  const firstFlood = lookups.slice(before).filter((n) => n.includes(`flood${tag}`)).length;
  assert.ok(firstFlood <= 1000 && firstFlood > 0, `first flood: ${firstFlood} lookups`);
  const afterFirst = lookups.length;
  await flood();
  assert.equal(lookups.length - afterFirst, 0, 'the second flood costs no lookup');
  const metricsAfter = metric(await s.router.metrics.registry.metrics(), 'router_cert_lookups_total', '{outcome="not_found"}');
  assert.equal(metricsAfter - metricsBefore, firstFlood);
  // The flood did not evict the real certificates (negative entries live apart).
  assert.equal((await handshake(known)).cn, known);
});

test('HSTS on HTTPS answers only, and force_https does not redirect on the TLS listener', async () => {
  assert.equal((await s.h.deploy('secure', [web.container], { settings: { force_https: true, hsts_max_age: 300 } })).status, 200);
  const overTls = await httpsGet(undefined, 'secure.localhost', { insecure: true });
  assert.equal(overTls.status, 200);
  assert.equal(overTls.headers['strict-transport-security'], 'max-age=300');
  const plain = await s.get('secure.localhost');
  assert.equal(plain.status, 308);
  assert.equal(plain.headers['strict-transport-security'], undefined);
  const noHsts = await httpsGet(undefined, 'shop.localhost', { insecure: true });
  assert.equal(noHsts.headers['strict-transport-security'], undefined);
});

test('an app\'s own Strict-Transport-Security wins over the router\'s', async () => {
  const own = await startUpstream('own-hsts', (_req, res) => {
    res.writeHead(200, { 'strict-transport-security': 'max-age=99; includeSubDomains' });
    res.end('own');
  });
  try {
    assert.equal((await s.h.deploy('own-hsts', [own.container], { settings: { hsts_max_age: 300 } })).status, 200);
    const res = await httpsGet(undefined, 'own-hsts.localhost', { insecure: true });
    assert.equal(res.headers['strict-transport-security'], 'max-age=99; includeSubDomains', 'one header, the app\'s');
  } finally {
    await own.close();
  }
});

test('both listeners share one balancer: a container ejected over HTTP is skipped over HTTPS', async () => {
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  assert.equal((await s.h.deploy('shared-lb', [{ id: 'dead', host: '127.0.0.1', port: deadPort }, web.container])).status, 200);
  await eventually(async () => (await s.get('shared-lb.localhost')).status === 200);
  // Enough plain requests that one of them tried the dead container and ejected it.
  for (let i = 0; i < 10; i++) assert.equal((await s.get('shared-lb.localhost')).status, 200);
  const retriesBefore = metric(await s.router.metrics.registry.metrics(), 'router_upstream_retries_total', '');
  for (let i = 0; i < 10; i++) assert.equal((await httpsGet(undefined, 'shared-lb.localhost', { insecure: true })).status, 200);
  const retriesAfter = metric(await s.router.metrics.registry.metrics(), 'router_upstream_retries_total', '');
  assert.equal(retriesAfter, retriesBefore, 'HTTPS requests never tried the container HTTP already ejected');
});

test('a WebSocket over TLS echoes', async () => {
  const server = http.createServer((_req, res) => res.end('echo'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo:${data.toString()}`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    assert.equal((await s.h.deploy('sock', [{ id: 'e1', host: '127.0.0.1', port }])).status, 200);
    assert.equal((await s.h.send({ app: 'sock', type: 'domains', domains: ['ws.sock.test'] })).status, 200);
    await setCert('sock', 'ws.sock.test', await ca.issue({ sans: ['ws.sock.test'] }));
    const ws = new WebSocket(`wss://127.0.0.1:${s.router.httpsPort}/socket`, {
      headers: { host: 'ws.sock.test' },
      // Not in @types/ws, but ws hands its options to tls.connect.
      servername: 'ws.sock.test',
      ca: [ca.certPem],
    } as ClientOptions);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const echoed = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    ws.send('hello');
    assert.equal(await echoed, 'echo:hello');
    ws.close();
  } finally {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('no private key appears in any router log line (pino at trace)', async () => {
  const name = 'log.keys.test';
  await addDomains(name);
  const cert = await ca.issue({ sans: [name] });
  await setCert('shop', name, cert);
  assert.equal((await handshake(name)).fingerprint, fingerprintOf(cert));
  const all = logText.join('');
  assert.ok(all.includes('certificate loaded'), 'the collecting stream did capture router lines');
  const body = cert.keyPem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'));
  for (const line of body) assert.ok(!all.includes(line), 'a line of the private key was logged');
  assert.ok(!all.includes('PRIVATE KEY'));
});

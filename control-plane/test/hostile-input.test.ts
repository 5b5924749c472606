import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from '../../test-support/control-plane.js';

let h: Harness;
before(async () => {
  h = await startHarness('hostile');
});
after(async () => {
  await h.close();
});

const container = { id: 'web-1', host: '10.0.0.1', port: 8080 };
const base = { id: 'evt-h', app: 'victim', seq: 1, type: 'deploy', containers: [container] };

const cases: Array<[string, unknown, number, string]> = [
  ['not an object', [1, 2, 3], 400, 'INVALID_FIELD'],
  ['a string', 'deploy', 400, 'INVALID_FIELD'],
  ['null', null, 400, 'INVALID_FIELD'],
  ['unknown field', { ...base, extra: 1 }, 400, 'UNKNOWN_FIELD'],
  ['__proto__ field', JSON.parse('{"__proto__":{"admin":true},"id":"x","app":"a","seq":1,"type":"stop"}'), 400, 'UNKNOWN_FIELD'],
  ['app with traversal', { ...base, app: '../etc' }, 400, 'INVALID_FIELD'],
  ['app with unicode', { ...base, app: 'café' }, 400, 'INVALID_FIELD'],
  ['app upper case', { ...base, app: 'Victim' }, 400, 'INVALID_FIELD'],
  ['app too long', { ...base, app: 'a'.repeat(64) }, 400, 'INVALID_FIELD'],
  ['id too long', { ...base, id: 'x'.repeat(129) }, 400, 'INVALID_FIELD'],
  ['id with spaces', { ...base, id: 'a b' }, 400, 'INVALID_FIELD'],
  ['seq zero', { ...base, seq: 0 }, 400, 'INVALID_FIELD'],
  ['seq float', { ...base, seq: 1.5 }, 400, 'INVALID_FIELD'],
  ['seq string', { ...base, seq: '1' }, 400, 'INVALID_FIELD'],
  ['seq unsafe', { ...base, seq: 2 ** 60 }, 400, 'INVALID_FIELD'],
  ['unknown type', { ...base, type: 'explode' }, 400, 'INVALID_FIELD'],
  ['deploy without containers', { ...base, containers: undefined }, 400, 'INVALID_FIELD'],
  ['empty containers', { ...base, containers: [] }, 400, 'INVALID_FIELD'],
  ['1001 containers', { ...base, containers: Array.from({ length: 1001 }, (_, i) => ({ id: `w${i}`, host: '10.0.0.1', port: 1000 + i })) }, 400, 'INVALID_FIELD'],
  ['port zero', { ...base, containers: [{ ...container, port: 0 }] }, 400, 'INVALID_FIELD'],
  ['port too big', { ...base, containers: [{ ...container, port: 70000 }] }, 400, 'INVALID_FIELD'],
  ['port as string', { ...base, containers: [{ ...container, port: '80' }] }, 400, 'INVALID_FIELD'],
  ['host with path', { ...base, containers: [{ ...container, host: '10.0.0.1/../x' }] }, 400, 'INVALID_FIELD'],
  ['container id traversal', { ...base, containers: [{ ...container, id: '../../x' }] }, 400, 'INVALID_FIELD'],
  ['container extra key', { ...base, containers: [{ ...container, weight: 3 }] }, 400, 'UNKNOWN_FIELD'],
  ['duplicate container ids', { ...base, containers: [container, { ...container, port: 9 }] }, 400, 'INVALID_FIELD'],
  ['containers on stop', { ...base, type: 'stop' }, 400, 'INVALID_FIELD'],
  ['domains on deploy', { ...base, domains: ['a.example.com'] }, 400, 'INVALID_FIELD'],
  ['10 000 domains', { id: 'd', app: 'victim', seq: 1, type: 'domains', domains: Array.from({ length: 10000 }, (_, i) => `d${i}.example.com`) }, 400, 'INVALID_FIELD'],
  ['domain with traversal', { id: 'd', app: 'victim', seq: 1, type: 'domains', domains: ['../../etc/passwd'] }, 400, 'INVALID_FIELD'],
  ['domain with unicode', { id: 'd', app: 'victim', seq: 1, type: 'domains', domains: ['exämple.com'] }, 400, 'INVALID_FIELD'],
  ['wildcard on a TLD', { id: 'd', app: 'victim', seq: 1, type: 'domains', domains: ['*.com'] }, 400, 'INVALID_FIELD'],
  ['single label domain', { id: 'd', app: 'victim', seq: 1, type: 'domains', domains: ['intranet'] }, 400, 'INVALID_FIELD'],
  ['settings wrong type', { ...base, settings: { force_https: 'yes' } }, 400, 'INVALID_FIELD'],
  ['settings unknown key', { ...base, settings: { gzip: true } }, 400, 'UNKNOWN_FIELD'],
  ['certificate without domain', { id: 'c', app: 'victim', seq: 1, type: 'certificate', certificate: { cert: 'x', key: 'y' } }, 400, 'INVALID_FIELD'],
  ['certificate garbage PEM', { id: 'c', app: 'victim', seq: 1, type: 'certificate', certificate: { domain: 'www.example.com', cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', key: 'k' } }, 400, 'INVALID_CERTIFICATE'],
];

test('hostile bodies are answered 4xx with a code and nothing is written', async () => {
  for (const [name, body, status, code] of cases) {
    const res = await h.post('/v1/events', body);
    assert.equal(res.status, status, `${name}: ${JSON.stringify(res.body).slice(0, 200)}`);
    assert.equal(res.body.code, code, name);
    assert.equal(typeof res.body.message, 'string', name);
  }
  assert.equal(await h.keyCount(), 0, 'nothing written under the prefix');
});

test('raw-body attacks: invalid JSON, deep nesting, huge body, wrong content type', async () => {
  const raw: Array<[string, string | Buffer, Record<string, string>, number, string]> = [
    ['truncated JSON', '{"id": "x", ', {}, 400, 'INVALID_JSON'],
    ['deep nesting', '['.repeat(200_000) + ']'.repeat(200_000), {}, 400, 'INVALID_FIELD'],
    ['deep object nesting', '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000), {}, 400, 'UNKNOWN_FIELD'],
    ['body over 1 MiB', JSON.stringify({ ...base, id: 'x'.repeat(2 * 1024 * 1024) }), {}, 413, 'BODY_TOO_LARGE'],
    ['text/plain', JSON.stringify(base), { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['empty body', '', {}, 400, 'INVALID_FIELD'],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), {}, 400, 'UNKNOWN_FIELD'],
  ];
  for (const [name, payload, headers, status, code] of raw) {
    const res = await h.post('/v1/events', undefined, { raw: payload, headers });
    assert.equal(res.status, status, `${name}: ${JSON.stringify(res.body).slice(0, 200)}`);
    assert.equal(res.body.code, code, name);
  }
  const charset = await h.post('/v1/events', undefined, { raw: JSON.stringify({ ...base, id: 'charset-ok' }), headers: { 'content-type': 'application/json; charset=utf-8' } });
  assert.equal(charset.status, 200, 'a charset parameter is fine');
  assert.equal((await h.get('/healthz')).status, 200, 'still alive');
});

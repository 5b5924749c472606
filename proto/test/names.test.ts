import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostFromHeader, normalizeDomain, normalizeHostname, wildcardFor, isValidAppName } from '../names.js';
import { classifyVersion, decodeInvalidation, encodeInvalidationOpen } from '../invalidation.js';
import { decodeHostRecord, encodeOpen, ownerPrefix, sealRecord, RecordError, type HostRecord } from '../records.js';
import { KeySchema } from '../keys.js';

test('Host header normalization', () => {
  assert.equal(hostFromHeader('My-App.LocalHost:8080'), 'my-app.localhost');
  assert.equal(hostFromHeader('www.example.com.'), 'www.example.com');
  assert.equal(hostFromHeader('[::1]:80'), '[::1]');
  for (const bad of [undefined, '', 'a b', 'x:port', 'x:123456', 'under_score.com', '-lead.com', 'a..b', 'é.com', 'a'.repeat(64) + '.com']) {
    assert.equal(hostFromHeader(bad), null, String(bad));
  }
});

test('domains and wildcards', () => {
  assert.equal(normalizeDomain('*.Example.org'), '*.example.org');
  assert.equal(normalizeDomain('*.org'), null);
  assert.equal(normalizeDomain('a.*.org'), null);
  assert.equal(normalizeDomain('localhost'), null);
  assert.equal(normalizeHostname('localhost'), 'localhost');
  assert.equal(wildcardFor('a.example.org'), '*.example.org');
  assert.equal(wildcardFor('example.org'), null);
  assert.equal(wildcardFor('localhost'), null);
  assert.ok(isValidAppName('my-app-2'));
  assert.ok(!isValidAppName('-x'));
  assert.ok(!isValidAppName('a/b'));
});

test('records are sealed with their version and checked on decode', () => {
  const open = encodeOpen<HostRecord>({ v: 1, app: 'x', status: 'running', containers: [], settings: { force_https: false, sticky_sessions: false, hsts_max_age: 0, balancer: 'p2c' } });
  assert.ok(open.startsWith(ownerPrefix('x')), 'app comes right after v: the apply script relies on it');
  const rec = decodeHostRecord(sealRecord(open, 42));
  assert.equal(rec.version, 42);
  assert.throws(() => decodeHostRecord('{"v":2,"app":"x","version":1}'), RecordError);
  assert.throws(() => decodeHostRecord('nope'), RecordError);
});

test('invalidation versions: apply the next, ignore old, flush on a gap', () => {
  assert.equal(classifyVersion(5, 6), 'apply');
  assert.equal(classifyVersion(5, 5), 'ignore');
  assert.equal(classifyVersion(5, 8), 'flush');
  const msg = decodeInvalidation(sealRecord(encodeInvalidationOpen({ v: 1, app: 'a', hosts: ['a.localhost'], certs: [] }), 7));
  assert.equal(msg.version, 7);
  assert.deepEqual(msg.hosts, ['a.localhost']);
  assert.throws(() => decodeInvalidation('{"v":1}'), RecordError);
});

test('key schema keeps every key under the prefix', () => {
  const k = new KeySchema('p:');
  for (const key of [k.versionKey, k.appsIndexKey, k.invalidationChannel, k.app('a'), k.host('a.b'), k.cert('*.b.c'), k.event('e'), k.signature('s')]) {
    assert.ok(key.startsWith('p:'), key);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backlog } from '../src/proxy/backlog.js';
import { Balancer, stickyFromCookie } from '../src/proxy/balancer.js';
import { CONNECTION, HOP, HOST, OTHER, ROUTER_SET, TRANSFER_ENCODING, VIA, X_FORWARDED_FOR, X_REQUEST_ID, connectionTokens, headerKind } from '../src/proxy/header-kinds.js';
import { responseHeaders } from '../src/proxy/headers.js';
import { requestIdFor } from '../src/proxy/request-id.js';
import { UpstreamPools } from '../src/proxy/upstream-pools.js';
import type { Container } from '../../proto/records.js';

test('header kinds are recognised in any case, and nothing else is', () => {
  assert.equal(headerKind('Host'), HOST);
  assert.equal(headerKind('HOST'), HOST);
  assert.equal(headerKind('Connection'), CONNECTION);
  for (const hop of ['TE', 'Trailer', 'Keep-Alive', 'Proxy-Connection', 'Proxy-Authorization', 'proxy-authenticate']) assert.equal(headerKind(hop), HOP, hop);
  assert.equal(headerKind('Transfer-Encoding'), TRANSFER_ENCODING);
  assert.equal(headerKind('X-Forwarded-For'), X_FORWARDED_FOR);
  for (const set of ['X-Forwarded-Proto', 'x-forwarded-port', 'X-Request-Start']) assert.equal(headerKind(set), ROUTER_SET, set);
  assert.equal(headerKind('X-Request-ID'), X_REQUEST_ID);
  assert.equal(headerKind('via'), VIA);
  for (const other of ['Accept', 'Content-Type', 'Hosts', 'hast', 'X-Forwarded-Fox', 'Te_', 'T@', 'Trailers', 'Authorization', 'User-Agent']) {
    assert.equal(headerKind(other), OTHER, other);
  }
});

test('Connection tokens: the usual values allocate nothing; listed names are collected lower-cased', () => {
  assert.equal(connectionTokens('keep-alive', null), null);
  assert.equal(connectionTokens('Close', null), null);
  assert.equal(connectionTokens('Upgrade', null), null);
  assert.deepEqual(connectionTokens('keep-alive, X-Foo ,x-bar', null), ['x-foo', 'x-bar']);
});

test('response headers: hop-by-hop and Connection-listed dropped, Via appended, request id replaced, cookie and close added', () => {
  const raw = ['Content-Type', 'text/plain', 'Connection', 'x-hop, keep-alive', 'X-Hop', '1', 'Transfer-Encoding', 'chunked', 'X-Request-Id', 'theirs', 'Via', '1.0 a'].map((s) => Buffer.from(s));
  assert.deepEqual(responseHeaders(raw, '1.1 r', 'ours', 'rt_sticky=c1; Path=/', true), [
    'Content-Type', 'text/plain',
    'via', '1.0 a, 1.1 r',
    'x-request-id', 'ours',
    'set-cookie', 'rt_sticky=c1; Path=/',
    'connection', 'close',
  ]);
});

test('request ids: 20-200 chars of [A-Za-z0-9+/=-] are kept, anything else replaced by a UUID', () => {
  for (const ok of ['a'.repeat(20), 'A'.repeat(200), 'abc+/=-0123456789XYZ']) assert.equal(requestIdFor(ok), ok);
  for (const bad of [undefined, 'a'.repeat(19), 'a'.repeat(201), 'a'.repeat(19) + '_', 'a'.repeat(19) + '\n']) {
    assert.match(requestIdFor(bad), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, String(bad));
  }
});

test('sticky cookie parsing', () => {
  assert.equal(stickyFromCookie(undefined), undefined);
  assert.equal(stickyFromCookie('rt_sticky=c1'), 'c1');
  assert.equal(stickyFromCookie('a=1; rt_sticky=c%2F2; b=3'), 'c%2F2');
  assert.equal(stickyFromCookie('not_rt_sticky=c1'), undefined);
  assert.equal(stickyFromCookie('xrt_sticky=c1; rt_sticky=c2'), 'c2');
});

const containers = (...ids: string[]): Container[] => ids.map((id, i) => ({ id, host: '10.0.0.1', port: 3000 + i }));

test('balancer state: reused while the container set is the same, rebuilt keeping surviving slots otherwise', () => {
  const b = new Balancer(10, 1000);
  const list = containers('a', 'b');
  const s1 = b.stateFor('app', list);
  assert.equal(b.stateFor('app', list), s1, 'same array: same state');
  assert.equal(b.stateFor('app', containers('a', 'b')), s1, 'equal content in a new array: same state');
  s1.slots[0]!.inflight = 4;
  const s2 = b.stateFor('app', containers('a', 'b', 'c'));
  assert.notEqual(s2, s1);
  assert.equal(s2.slots[0], s1.slots[0], 'slot of a kept, with its in-flight count');
  assert.equal(s2.slots[0]!.inflight, 4);
  const moved = b.stateFor('app', [{ id: 'a', host: '10.0.0.9', port: 3000 }]);
  assert.notEqual(moved.slots[0], s1.slots[0], 'same id on another address is another container');
});

test('balancer LRU is bounded', () => {
  const b = new Balancer(2, 1000);
  const first = b.stateFor('one', containers('a'));
  b.stateFor('two', containers('a'));
  b.stateFor('three', containers('a'));
  assert.notEqual(b.stateFor('one', first.containers), first, 'evicted, then rebuilt');
});

test('p2c never picks a loaded container against an idle one; ejected and excluded containers are skipped', () => {
  const b = new Balancer(10, 1000);
  const state = b.stateFor('app', containers('a', 'b', 'c'));
  const [a, bb, c] = state.slots as [typeof state.slots[0] & object, typeof state.slots[0] & object, typeof state.slots[0] & object];
  a.inflight = 5;
  const counts = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const id = b.pick(state, false, undefined, null, 0)!.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  assert.equal(counts.get('a'), undefined);
  assert.ok((counts.get('b') ?? 0) > 50 && (counts.get('c') ?? 0) > 50, JSON.stringify([...counts]));

  assert.equal(b.eject(bb, 100), true);
  assert.equal(b.eject(bb, 100), false, 'already ejected');
  for (let i = 0; i < 50; i++) assert.equal(b.pick(state, false, undefined, null, 200)!.id, 'c', 'b ejected, a loaded');
  assert.equal(b.pick(state, false, undefined, [c], 200)!.id, 'a', 'c excluded: a, not the ejected b');
  assert.equal(b.pick(state, false, undefined, [a, c], 200)!.id, 'b', 'only b left: an ejection may be stale');
  assert.equal(b.pick(state, false, undefined, [a, bb, c], 200), null);
  assert.equal(b.pick(state, false, undefined, null, 100 + 1000)!.id !== 'a', true, 'ejection over');
});

test('round robin skips ejected containers', () => {
  const b = new Balancer(10, 1000);
  const state = b.stateFor('app', containers('a', 'b', 'c'));
  b.eject(state.slots[1]!, 0);
  const order = Array.from({ length: 6 }, () => b.pick(state, true, undefined, null, 10)!.id);
  assert.deepEqual(order, ['a', 'c', 'a', 'c', 'a', 'c']);
});

test('backlog counts per app and forgets idle apps', () => {
  const backlog = new Backlog(2);
  assert.ok(backlog.tryEnter('x'));
  assert.ok(backlog.tryEnter('x'));
  assert.equal(backlog.tryEnter('x'), false);
  assert.ok(backlog.tryEnter('y'));
  backlog.leave('x');
  assert.ok(backlog.tryEnter('x'));
  backlog.leave('x');
  backlog.leave('x');
  backlog.leave('x');
  assert.equal(backlog.inflight('x'), 0);
  assert.ok(backlog.tryEnter('x') && backlog.tryEnter('x') && !backlog.tryEnter('x'), 'extra leaves do not go negative');
});

test('upstream pools: one per origin, shared; closed after sweeps without use', async () => {
  const pools = new UpstreamPools({ connections: 2, connectTimeoutMs: 1000, idleCloseMs: 3_600_000 });
  try {
    const a = pools.get('http://127.0.0.1:1');
    assert.equal(pools.get('http://127.0.0.1:1'), a);
    pools.get('http://127.0.0.1:2');
    assert.equal(pools.size, 2);
    pools.sweep();
    pools.sweep();
    pools.get('http://127.0.0.1:2');
    pools.sweep();
    assert.equal(pools.size, 1, 'the unused pool was closed, the used one kept');
    assert.notEqual(pools.get('http://127.0.0.1:1'), a, 'a closed pool is replaced, never reused');
  } finally {
    await pools.destroy();
  }
});

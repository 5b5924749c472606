import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHostRecord } from '../../proto/records.js';
import { startHarness, type Harness } from '../../test-support/control-plane.js';

let h: Harness;
before(async () => {
  h = await startHarness('atomic');
});
after(async () => {
  await h.close();
});

test('a reader polling while events apply never sees half an event', async () => {
  const domains = Array.from({ length: 20 }, (_, i) => `d${i}.atomic.test`);
  const hostnames = ['omega.localhost', ...domains];
  const sets = [
    [{ id: 'a1', host: '10.0.0.1', port: 1 }, { id: 'a2', host: '10.0.0.2', port: 2 }, { id: 'a3', host: '10.0.0.3', port: 3 }],
    [{ id: 'b1', host: '10.0.1.1', port: 4 }],
  ];
  await h.deploy('omega', sets[0]!);
  await h.send({ app: 'omega', type: 'domains', domains });

  const reader = h.redis.duplicate();
  let stop = false;
  let polls = 0;
  let complete = 0;
  let absent = 0;
  const violations: string[] = [];
  const poll = (async () => {
    while (!stop) {
      const raws = await reader.mget(...hostnames.map((n) => h.keys.host(n)));
      polls++;
      const present = raws.filter((r): r is string => r !== null);
      if (present.length === 0) {
        absent++;
        continue;
      }
      // Between events the app may legitimately have only its default hostname (deployed,
      // domains not yet attached); within one event, all or nothing.
      const defaultOnly = present.length === 1 && raws[0] !== null;
      if (present.length !== hostnames.length && !defaultOnly) violations.push(`${present.length}/${hostnames.length} hostnames present`);
      const records = present.map(decodeHostRecord);
      // Unchanged hostnames keep the version of their last write, so compare what routes.
      const contents = new Set(records.map((r) => JSON.stringify([r.status, r.containers, r.settings])));
      if (contents.size !== 1) violations.push(`hostnames disagree: ${[...contents].join(' | ')}`);
      for (const r of records) {
        if (r.status === 'running' && r.containers.length === 0) violations.push('running without containers');
        if (r.status === 'stopped' && r.containers.length !== 0) violations.push('stopped with containers');
      }
      complete++;
    }
  })();

  const deadline = Date.now() + 4000;
  let i = 0;
  while (Date.now() < deadline && i < 400) {
    const k = i % 8;
    if (k === 6) await h.send({ app: 'omega', type: 'stop' });
    else if (k === 7) {
      await h.send({ app: 'omega', type: 'delete' });
      await h.deploy('omega', sets[0]!);
      await h.send({ app: 'omega', type: 'domains', domains });
    } else await h.send({ app: 'omega', type: 'scale', containers: sets[k % 2]! });
    i++;
  }
  stop = true;
  await poll;
  reader.disconnect();
  assert.deepEqual(violations.slice(0, 5), []);
  assert.ok(polls > 50, `the reader polled (${polls})`);
  assert.ok(complete > 0 && i > 20, `events applied (${i}) while complete reads happened (${complete}); absent reads ${absent}`);
});

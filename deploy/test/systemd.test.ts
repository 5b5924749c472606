import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseEnvFile } from '../env-file.js';
import { ENV_DIR, SERVICES, envFilePath, type DeployedService } from '../services.js';
import { NOT_MERGED_ENTRIES, loadService, readRepoFile, repoPath, sampleFor } from './deploy-files.js';

const run = promisify(execFile);

type Unit = Map<string, string[]>;

/** `Section.Key` → every value it is given (keys may repeat); an empty assignment resets. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not Key=value: ${line}`);
    const key = `${section}.${line.slice(0, eq).trim()}`;
    const value = line.slice(eq + 1).trim();
    unit.set(key, value === '' ? [''] : [...(unit.get(key) ?? []).filter((v) => v !== ''), value]);
  }
  return unit;
}

const unitText = (s: DeployedService) => readRepoFile('deploy', 'systemd', `${s.unit}.service`);
const one = (unit: Unit, key: string): string | undefined => unit.get(key)?.at(-1);

/** The env file as installed, placeholders filled: what the service reads under this unit. */
function installedConfig(s: DeployedService) {
  const file = parseEnvFile(readRepoFile('deploy', 'systemd', 'env', `${s.name}.env`));
  return loadService(s.name, Object.fromEntries([...file.set].map(([k, v]) => [k, v === '' ? sampleFor(s, k) : v])));
}

function seconds(value: string | undefined): number {
  const m = /^(\d+)(s|min)?$/.exec(value ?? '');
  assert.ok(m, `a duration in seconds: ${value}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : 1);
}

test('each unit runs its service from its env file, as an unprivileged user, restarted always', () => {
  for (const s of SERVICES) {
    const unit = parseUnit(unitText(s));
    assert.equal(one(unit, 'Service.EnvironmentFile'), envFilePath(s), `${s.unit}: EnvironmentFile`);
    assert.ok(envFilePath(s).startsWith(`${ENV_DIR}/`));
    const exec = one(unit, 'Service.ExecStart')!.split(/\s+/);
    assert.equal(exec[0], '/usr/bin/node', `${s.unit}: ExecStart runs node by absolute path`);
    const workdir = one(unit, 'Service.WorkingDirectory')!;
    assert.equal(exec[1], `${workdir}/${s.entry}`, `${s.unit}: ExecStart runs ${s.entry} of the checkout in WorkingDirectory`);
    if (NOT_MERGED_ENTRIES.has(s.entry)) {
      assert.equal(existsSync(repoPath(s.entry)), false, `${s.entry} exists now: remove it from NOT_MERGED_ENTRIES`);
    } else {
      assert.ok(existsSync(repoPath(s.entry)), `${s.entry} is what npm run build produces`);
    }
    const user = one(unit, 'Service.User');
    assert.ok(user !== undefined && user !== 'root' && user !== '0', `${s.unit}: a dedicated user`);
    assert.equal(one(unit, 'Service.Restart'), 'always', `${s.unit}: Restart`);
    assert.equal(one(unit, 'Service.KillSignal'), 'SIGTERM', `${s.unit}: KillSignal`);
    for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['PrivateTmp', 'yes'], ['ProtectHome', 'yes']] as const) {
      assert.equal(one(unit, `Service.${key}`), value, `${s.unit}: ${key}`);
    }
    assert.ok(Number(one(unit, 'Service.LimitNOFILE')) >= 65536, `${s.unit}: LimitNOFILE`);
    // A malformed variable exits 78 (EX_CONFIG): restarting it forever would hide the message.
    assert.equal(one(unit, 'Service.RestartPreventExitStatus'), '78', `${s.unit}: RestartPreventExitStatus`);
  }
});

test('the router binds 80/443 with one capability, reloads with SIGHUP and outlasts its drain', () => {
  const s = SERVICES.find((x) => x.name === 'router')!;
  const unit = parseUnit(unitText(s));
  assert.equal(one(unit, 'Service.AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one(unit, 'Service.CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one(unit, 'Service.LimitNOFILE'), '1048576');
  assert.equal(one(unit, 'Service.ExecReload'), '/bin/kill -HUP $MAINPID');
  // The primary orchestrates the drain; its workers ignore SIGTERM of their own.
  assert.equal(one(unit, 'Service.KillMode'), 'mixed');
  const config = installedConfig(s);
  // The primary kills workers still draining 5 s after ROUTER_DRAIN_TIMEOUT (cluster/primary.ts).
  assert.ok(seconds(one(unit, 'Service.TimeoutStopSec')) * 1000 > config.drainTimeoutMs! + 5000, `TimeoutStopSec > ROUTER_DRAIN_TIMEOUT (${config.drainTimeoutMs} ms) + 5 s`);
});

test('only a unit with CAP_NET_BIND_SERVICE is given ports below 1024', () => {
  for (const s of SERVICES) {
    const unit = parseUnit(unitText(s));
    const privileged = Object.entries(installedConfig(s).listeners).filter(([, l]) => l.port > 0 && l.port < 1024);
    const capable = (one(unit, 'Service.AmbientCapabilities') ?? '').includes('CAP_NET_BIND_SERVICE');
    assert.ok(privileged.length === 0 || capable, `${s.unit}: ${privileged.map(([n, l]) => `${n} ${l.port}`).join(', ')} need CAP_NET_BIND_SERVICE`);
    if (!capable) assert.equal(one(unit, 'Service.CapabilityBoundingSet'), '', `${s.unit}: no capability at all`);
  }
});

test('the log-shipper writes LOG_DIR and nothing else, and reopens its files on reload', () => {
  const s = SERVICES.find((x) => x.name === 'log-shipper')!;
  const unit = parseUnit(unitText(s));
  const logDir = installedConfig(s).logDir!;
  const logsDirectory = (unit.get('Service.LogsDirectory') ?? []).map((d) => `/var/log/${d}`);
  assert.ok(logsDirectory.includes(logDir), `LogsDirectory= creates LOG_DIR ${logDir} for the service user`);
  assert.ok((unit.get('Service.ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/)).includes(logDir), 'ReadWritePaths has LOG_DIR');
  assert.equal(one(unit, 'Service.ExecReload'), '/bin/kill -HUP $MAINPID');
  for (const other of SERVICES.filter((x) => x !== s)) {
    assert.equal(parseUnit(unitText(other)).get('Service.ReadWritePaths'), undefined, `${other.unit} writes nowhere`);
  }
});

test('logrotate renames the shipper\'s files and has it reopen them (no copytruncate)', async (t) => {
  const text = readRepoFile('deploy', 'logrotate', 'platform-log-shipper');
  const s = SERVICES.find((x) => x.name === 'log-shipper')!;
  const logDir = installedConfig(s).logDir!;
  const config = text.replace(/#.*$/gm, '');
  assert.match(config, new RegExp(`^${logDir.replace(/[/.]/g, '\\$&')}/\\*/router\\.log \\{`, 'm'), `rotates ${logDir}/*/router.log`);
  assert.doesNotMatch(config, /copytruncate/);
  assert.match(config, /\bnocreate\b/, 'the shipper creates the new file itself');
  const postrotate = /postrotate\n([\s\S]*?)\n\s*endscript/.exec(config);
  assert.ok(postrotate, 'a postrotate script');
  assert.ok(postrotate[1]!.includes(`systemctl reload ${s.unit}`) || postrotate[1]!.includes('kill -HUP'), 'postrotate reloads the shipper');
  assert.equal(one(parseUnit(unitText(s)), 'Service.ExecReload'), '/bin/kill -HUP $MAINPID', 'its reload is the SIGHUP that reopens files');

  const logrotate = ['/usr/sbin/logrotate', '/sbin/logrotate', '/usr/bin/logrotate'].find((p) => existsSync(p));
  if (logrotate === undefined) {
    t.diagnostic('logrotate is not installed: the file is checked as text only, not parsed by logrotate (apt-get install logrotate)');
    return;
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'logrotate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const state = path.join(dir, 'state');
  const result = await run(logrotate, ['--debug', '--state', state, repoPath('deploy', 'logrotate', 'platform-log-shipper')]).catch((err: { code: number; stderr: string }) => err);
  assert.equal('code' in result ? result.code : 0, 0, `logrotate --debug: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /error/i, result.stderr);
});

test('systemd-analyze verify accepts the three units', async (t) => {
  const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
  if (analyze === undefined) {
    t.diagnostic('systemd-analyze is not installed: the units are checked as text only, not verified (apt-get install systemd)');
    return;
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'units-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files: string[] = [];
  for (const s of SERVICES) {
    // verify checks that ExecStart's binary exists: the node running this test stands in for /usr/bin/node.
    const text = unitText(s).replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `);
    const file = path.join(dir, `${s.unit}.service`);
    await writeFile(file, text);
    files.push(file);
  }
  const result = await run(analyze, ['verify', '--man=no', ...files]).catch((err: { code: number; stdout: string; stderr: string }) => err);
  const output = `${result.stdout}${result.stderr}`;
  assert.equal('code' in result ? result.code : 0, 0, output);
  // verify exits 0 on warnings (an unknown key, an unparsable value "ignoring"): any line about our units fails.
  const ours = output.split('\n').filter((l) => SERVICES.some((s) => l.includes(s.unit)));
  assert.deepEqual(ours, [], output);
});

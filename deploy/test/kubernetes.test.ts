import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import type { DeployedService, ServiceName } from '../services.js';
import { ANY_ADDRESS, hostPort, isSecret, list, loadService, obj, readYaml, refusal, repoPath, sampleFor, serviceOfCommand, undeclared, type Json } from './deploy-files.js';

const DIR = ['deploy', 'kubernetes'];
const kustomization = obj(readYaml(...DIR, 'kustomization.yaml')[0], 'kustomization.yaml');
const resources = list(kustomization['resources'], 'resources').map(String);
const manifests: Json[] = resources.flatMap((file) => readYaml(...DIR, file).filter((d) => d !== null).map((d) => obj(d, file)));

const ofKind = (kind: string) => manifests.filter((m) => m['kind'] === kind);
const nameOf = (m: Json) => String(obj(m['metadata'], 'metadata')['name']);
const find = (kind: string, name: string): Json => {
  const found = ofKind(kind).find((m) => nameOf(m) === name);
  assert.ok(found, `a ${kind} named ${name}`);
  return found;
};

interface Container {
  workload: Json;
  pod: Json;
  container: Json;
  service: DeployedService;
  /** Where each variable comes from. */
  sources: Map<string, 'configMap' | 'secret' | 'value'>;
  /** The environment as the pod gets it, with the Secret's empty placeholders filled by samples. */
  env: Record<string, string>;
}

function containersOf(): Container[] {
  const out: Container[] = [];
  for (const workload of [...ofKind('Deployment'), ...ofKind('DaemonSet'), ...ofKind('StatefulSet')]) {
    const pod = obj(obj(obj(workload['spec'], 'spec')['template'], 'template')['spec'], 'pod spec');
    for (const raw of list(pod['containers'], 'containers')) {
      const container = obj(raw, 'container');
      const service = serviceOfCommand(list(container['command'], 'command'));
      assert.ok(service, `${nameOf(workload)}: the command runs one of the services`);
      const sources = new Map<string, 'configMap' | 'secret' | 'value'>();
      const env: Record<string, string> = {};
      for (const from of list(container['envFrom'] ?? [], 'envFrom').map((f) => obj(f, 'envFrom'))) {
        const ref = obj(from['configMapRef'], 'envFrom only from ConfigMaps (secrets by secretKeyRef)');
        const data = obj(find('ConfigMap', String(ref['name']))['data'], 'data');
        for (const [k, v] of Object.entries(data)) {
          sources.set(k, 'configMap');
          env[k] = String(v);
        }
      }
      for (const item of list(container['env'] ?? [], 'env').map((e) => obj(e, 'env'))) {
        const name = String(item['name']);
        if (item['value'] !== undefined) {
          sources.set(name, 'value');
          env[name] = String(item['value']);
          continue;
        }
        const ref = obj(obj(item['valueFrom'], `${name}.valueFrom`)['secretKeyRef'], `${name}: valueFrom.secretKeyRef`);
        const secret = find('Secret', String(ref['name']));
        const data = obj(secret['stringData'] ?? secret['data'], `${nameOf(secret)} data`);
        assert.ok(String(ref['key']) in data, `${name}: key ${String(ref['key'])} is in Secret ${nameOf(secret)}`);
        sources.set(name, 'secret');
        const value = String(data[String(ref['key'])]);
        env[name] = value === '' ? sampleFor(service, name) : value;
      }
      out.push({ workload, pod, container, service, sources, env });
    }
  }
  return out;
}

const containers = containersOf();
const byService = (s: ServiceName): Container => {
  const found = containers.filter((c) => c.service.name === s);
  assert.equal(found.length, 1, `one ${s} container`);
  return found[0]!;
};

/** Where `name` comes from, comparable across containers: the Secret key, or the value. */
function origin(c: Container, name: string): string {
  const item = list(c.container['env'] ?? [], 'env').map((e) => obj(e, 'env')).find((e) => e['name'] === name);
  if (item !== undefined && item['valueFrom'] !== undefined) return JSON.stringify(item['valueFrom']);
  return `value ${c.env[name] ?? '(default)'}`;
}

/** A probe's or Service's port: a number, or the name of a container port. */
function containerPort(c: Container, port: unknown): number {
  if (typeof port === 'number') return port;
  const named = list(c.container['ports'], 'ports').map((p) => obj(p, 'port')).find((p) => p['name'] === port);
  assert.ok(named, `${c.service.name}: a container port named ${String(port)}`);
  return Number(named['containerPort']);
}

test('kustomization lists every manifest, each parses, each service has its workload', () => {
  const files = readdirSync(repoPath(...DIR)).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...resources].sort(), files, 'kustomization.yaml resources are the files of deploy/kubernetes');
  for (const m of manifests) assert.ok(typeof m['apiVersion'] === 'string' && typeof m['kind'] === 'string', `${nameOf(m)}: apiVersion and kind`);
  assert.equal(byService('control-plane').workload['kind'], 'Deployment');
  assert.equal(byService('router').workload['kind'], 'DaemonSet');
  assert.equal(byService('log-shipper').workload['kind'], 'StatefulSet');
  // A ConfigMap no container reads would escape every check below.
  const used = new Set(containers.flatMap((c) => list(c.container['envFrom'] ?? [], 'envFrom').map((f) => String(obj(obj(f, 'envFrom')['configMapRef'], 'configMapRef')['name']))));
  assert.deepEqual(ofKind('ConfigMap').map(nameOf).filter((n) => !used.has(n)), [], 'ConfigMaps no container reads');
  const image = list(kustomization['images'], 'images').map((i) => obj(i, 'image'));
  for (const c of containers) assert.ok(image.some((i) => String(c.container['image']).split(':')[0] === i['name']), `${c.service.name}: its image is set in kustomization.yaml`);
});

test('each container gets only variables its service declares, secrets only from Secrets, and all it requires', () => {
  for (const c of containers) {
    assert.deepEqual(undeclared(c.service, c.sources.keys()), [], `${c.service.name}: variables it does not declare`);
    for (const [name, source] of c.sources) {
      assert.equal(source === 'secret', isSecret(c.service, name), `${c.service.name}: ${name} ${isSecret(c.service, name) ? 'is secret: from a Secret' : 'is not secret: from the ConfigMap'}`);
    }
    assert.equal(refusal(c.service.name, c.env), null, `${c.service.name} starts with its environment`);
  }
  const cp = byService('control-plane');
  const router = byService('router');
  // Routers and the control plane must agree on these (docs/OPERATIONS.md, Running the router).
  for (const shared of ['REDIS_URL', 'REDIS_PREFIX', 'PLATFORM_DOMAIN', 'KEY_ENCRYPTION_KEY']) {
    assert.equal(origin(router, shared), origin(cp, shared), `the routers and the control plane agree on ${shared}`);
  }
});

test('probes: /readyz and /healthz on the port each service serves them, on an address the kubelet reaches', () => {
  for (const c of containers) {
    const loaded = loadService(c.service.name, c.env);
    for (const [probe, path] of [['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']] as const) {
      const get = obj(obj(c.container[probe], `${c.service.name}.${probe}`)['httpGet'], `${probe}.httpGet`);
      assert.equal(get['path'], path, `${c.service.name}: ${probe} path`);
      assert.equal(containerPort(c, get['port']), loaded.probe.port, `${c.service.name}: ${probe} port is where ${path} is served`);
    }
    assert.ok(ANY_ADDRESS.has(loaded.probe.host), `${c.service.name}: the probe listener binds ${loaded.probe.host}: the kubelet cannot reach it`);
    // Every declared container port is one the service listens on.
    for (const p of list(c.container['ports'], 'ports').map((x) => obj(x, 'port'))) {
      assert.ok(Object.values(loaded.listeners).some((l) => l.port === p['containerPort']), `${c.service.name}: containerPort ${String(p['containerPort'])} is one of its listeners`);
    }
  }
});

test('routers: hostPorts 80/443 on the ports they listen on, unprivileged, draining within the grace period', () => {
  const c = byService('router');
  const loaded = loadService('router', c.env);
  const ports = list(c.container['ports'], 'ports').map((p) => obj(p, 'port'));
  const publicPort = (listener: string, hostPort: number) => {
    const p = ports.find((x) => x['hostPort'] === hostPort);
    assert.ok(p, `hostPort ${hostPort}`);
    assert.equal(p['containerPort'], loaded.listeners[listener]!.port, `hostPort ${hostPort} goes to ROUTER_${listener.toUpperCase()}_PORT`);
  };
  publicPort('http', 80);
  publicPort('https', 443);
  // force_https redirects to ROUTER_HTTPS_PORT: it must be the port clients reach.
  assert.equal(loaded.listeners['https']!.port, 443);
  const security = obj(c.pod['securityContext'], 'securityContext');
  assert.equal(security['runAsNonRoot'], true);
  const unprivilegedFrom = list(security['sysctls'] ?? [], 'sysctls').map((s) => obj(s, 'sysctl')).find((s) => s['name'] === 'net.ipv4.ip_unprivileged_port_start');
  for (const l of Object.values(loaded.listeners)) {
    if (l.port < 1024) assert.ok(unprivilegedFrom !== undefined && Number(unprivilegedFrom['value']) <= l.port, `port ${l.port} as non-root needs net.ipv4.ip_unprivileged_port_start <= ${l.port}`);
  }
  const preStop = list(obj(obj(obj(c.container['lifecycle'], 'lifecycle')['preStop'], 'preStop')['exec'], 'exec')['command'], 'command').map(String);
  assert.equal(preStop[0], 'sleep');
  const grace = Number(c.pod['terminationGracePeriodSeconds']);
  // The primary kills workers still draining 5 s after ROUTER_DRAIN_TIMEOUT (cluster/primary.ts).
  assert.ok(grace * 1000 > Number(preStop[1]) * 1000 + loaded.drainTimeoutMs! + 5000, `terminationGracePeriodSeconds ${grace} > preStop + ROUTER_DRAIN_TIMEOUT + 5 s`);
});

test('Services and the log-shipper\'s volume match what the services listen on and write', () => {
  const cp = byService('control-plane');
  const cpService = find('Service', 'control-plane');
  const cpLoaded = loadService('control-plane', cp.env);
  for (const p of list(obj(cpService['spec'], 'spec')['ports'], 'ports').map((x) => obj(x, 'port'))) {
    assert.equal(containerPort(cp, p['targetPort']), cpLoaded.listeners[String(p['name'])]?.port, `control-plane Service port ${String(p['name'])}`);
    assert.equal(p['port'], containerPort(cp, p['targetPort']), 'the Service keeps the port numbers');
  }

  const shipper = byService('log-shipper');
  const shipperLoaded = loadService('log-shipper', shipper.env);
  const statefulSet = obj(shipper.workload['spec'], 'spec');
  const service = find('Service', String(statefulSet['serviceName']));
  const servicePort = obj(list(obj(service['spec'], 'spec')['ports'], 'ports')[0], 'port');
  assert.equal(containerPort(shipper, servicePort['targetPort']), shipperLoaded.listeners['logs']!.port);
  const target = hostPort(byService('router').env['LOG_SHIPPER_URL'] ?? '');
  assert.equal(target.host.split('.')[0], nameOf(service), 'LOG_SHIPPER_URL names the log-shipper Service');
  assert.equal(target.port, servicePort['port'], 'LOG_SHIPPER_URL uses its port');
  assert.equal(origin(byService('router'), 'LOG_SHIPPER_TOKEN'), origin(shipper, 'LOG_SHIPPER_TOKEN'), 'routers send the token the shipper expects');

  const claims = list(statefulSet['volumeClaimTemplates'], 'volumeClaimTemplates').map((v) => obj(v, 'claim'));
  const mount = list(shipper.container['volumeMounts'], 'volumeMounts').map((m) => obj(m, 'mount')).find((m) => m['mountPath'] === shipperLoaded.logDir);
  assert.ok(mount, `a volume is mounted at LOG_DIR ${shipperLoaded.logDir}`);
  assert.ok(claims.some((cl) => nameOf(cl) === mount['name']), 'from the volumeClaimTemplate');
  assert.ok(obj(shipper.pod['securityContext'], 'securityContext')['fsGroup'] !== undefined, 'fsGroup makes the volume writable by the non-root user');
});

test('PodDisruptionBudgets cover the routers and the control plane', () => {
  for (const s of ['router', 'control-plane'] as const) {
    const c = byService(s);
    const labels = obj(obj(obj(obj(c.workload['spec'], 'spec')['template'], 'template')['metadata'], 'metadata')['labels'], 'labels');
    const pdb = ofKind('PodDisruptionBudget').find((p) => {
      const match = obj(obj(obj(p['spec'], 'spec')['selector'], 'selector')['matchLabels'], 'matchLabels');
      return Object.entries(match).every(([k, v]) => labels[k] === v);
    });
    assert.ok(pdb, `a PodDisruptionBudget selects the ${s} pods`);
  }
});

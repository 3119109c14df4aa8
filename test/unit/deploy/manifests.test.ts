/**
 * deploy/: every Kubernetes manifest validates against the Kubernetes schemas
 * (kubernetes-models) and has no field the API does not know; the ConfigMap's
 * configuration passes the real `spindle check-config` for every node; the probes, the
 * metrics scrape and the preStop drain use endpoints, ports and commands that exist; the
 * Dockerfile, the systemd unit and the Grafana dashboard agree with the code.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { MAIN, REPO } from '../../helpers/target.ts';
import { ROUTES } from '../../../src/supervisor/admin/routes.ts';
import { parseCli } from '../../../src/supervisor/cli.ts';
import { parseConfig } from '../../../src/supervisor/config/load.ts';
import { METRICS } from '../../../src/supervisor/metrics/exporter.ts';
import pkg from '../../../package.json' with { type: 'json' };

const BASE = path.join(REPO, 'deploy/kubernetes/base');
const KM = path.join(REPO, 'node_modules/kubernetes-models');
const APIMACHINERY = path.join(REPO, 'node_modules/@kubernetes-models/apimachinery');

type Doc = Record<string, any>;

/** Every document of every YAML file of the base (the example Secrets too). */
function manifests(): { file: string; doc: Doc }[] {
  const out: { file: string; doc: Doc }[] = [];
  for (const file of readdirSync(BASE).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && f !== 'spindle.yaml')) {
    for (const d of YAML.parseAllDocuments(readFileSync(path.join(BASE, file), 'utf8'))) {
      expect(d.errors, file).toEqual([]);
      const doc = d.toJS() as Doc | null;
      if (doc !== null) out.push({ file, doc });
    }
  }
  return out;
}

function find(kind: string, name?: string): Doc {
  const m = manifests().find((x) => x.doc['kind'] === kind && (name === undefined || x.doc['metadata']?.name === name));
  if (m === undefined) throw new Error(`no ${kind} ${name ?? ''}`);
  return m.doc;
}

/** apiVersion -> the kubernetes-models directory of its group/version. */
function modelDir(apiVersion: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return group === '' ? path.join(KM, version!) : path.join(KM, group!, version!);
}

// ---- unknown-field check: walk a manifest along the models' declarations ----

interface Declared {
  /** Property -> its declaration file when it is another model interface, '' for scalars and free maps. */
  readonly props: Map<string, string>;
}

const declCache = new Map<string, Declared>();

/** The properties of the first interface in a kubernetes-models .d.ts file. */
function declared(file: string): Declared {
  const cached = declCache.get(file);
  if (cached !== undefined) return cached;
  const text = readFileSync(file, 'utf8');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
    const spec = m[2]!;
    const resolved = spec.startsWith('@kubernetes-models/apimachinery/')
      ? path.join(APIMACHINERY, `${spec.slice('@kubernetes-models/apimachinery/'.length)}.d.ts`)
      : path.join(path.dirname(file), spec.replace(/\.js$/, '.d.ts'));
    imports.set(m[1]!, resolved);
  }
  const start = text.search(/^export interface I\w+/m);
  const body = text.slice(start, text.indexOf('\n}', start));
  const props = new Map<string, string>();
  for (const m of body.matchAll(/^ {4}"([^"]+)"\??: (.+)$/gm)) {
    const type = m[2]!;
    const ref = /IIoK8s\w+/.exec(type)?.[0];
    // A free map ({ [key: string]: X }) or a scalar: its keys are not checked.
    props.set(m[1]!, ref !== undefined && !type.trimEnd().endsWith('{') ? (imports.get(ref) ?? '') : '');
  }
  const d = { props };
  declCache.set(file, d);
  return d;
}

/** Paths of fields the declarations do not have (typos, misplaced keys). */
function unknownFields(value: unknown, file: string, at: string, out: string[] = []): string[] {
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, file, `${at}[${i}]`, out));
    return out;
  }
  if (typeof value !== 'object' || value === null) return out;
  const d = declared(file);
  for (const [k, v] of Object.entries(value)) {
    if (!d.props.has(k)) {
      out.push(`${at}.${k}`);
      continue;
    }
    const child = d.props.get(k)!;
    if (child !== '' && existsSync(child)) unknownFields(v, child, `${at}.${k}`, out);
  }
  return out;
}

describe('Kubernetes manifests', () => {
  it('validate against the Kubernetes schemas, with no unknown field', async () => {
    const all = manifests();
    expect(all.map((m) => `${m.doc['kind']}/${m.doc['metadata']?.name}`).sort()).toEqual(
      [
        'DaemonSet/spindle',
        'Namespace/spindle',
        'PodDisruptionBudget/spindle-redis',
        'Secret/spindle-api',
        'Secret/spindle-chap',
        'Secret/spindle-redis',
        'Service/spindle-metrics',
        'Service/spindle-redis',
        'ServiceMonitor/spindle',
        'StatefulSet/spindle-redis',
      ].sort(),
    );
    for (const { file, doc } of all) {
      if (doc['apiVersion'] === 'monitoring.coreos.com/v1') continue; // a CRD: checked below
      const kind = doc['kind'] as string;
      const mod = (await import(path.join(modelDir(doc['apiVersion']), `${kind}.js`))) as Record<string, new (d: unknown) => { validate(): void }>;
      const Model = mod[kind]!;
      expect(() => new Model(doc).validate(), `${file}: ${kind}`).not.toThrow();
      // A typo the schema accepts would be dropped by the API server: refuse it here.
      expect(unknownFields(doc, path.join(modelDir(doc['apiVersion']), `${kind}.d.ts`), kind), `${file}: ${kind}`).toEqual([]);
    }
  });

  it('the schemas and the field check do catch mistakes', async () => {
    const ds = structuredClone(find('DaemonSet'));
    ds['spec'].template.spec.containers[0].livenessProbe.periodSecs = 3;
    expect(unknownFields(ds, path.join(KM, 'apps/v1/DaemonSet.d.ts'), 'DaemonSet')).toEqual(['DaemonSet.spec.template.spec.containers[0].livenessProbe.periodSecs']);
    ds['spec'].template.spec.containers[0].ports[0].containerPort = 'iscsi';
    const { DaemonSet } = await import('kubernetes-models/apps/v1');
    expect(() => new DaemonSet(ds).validate()).toThrow();
  });

  it('kustomization: every resource and generated file exists; the image is the container\'s', () => {
    const k = YAML.parse(readFileSync(path.join(BASE, 'kustomization.yaml'), 'utf8')) as Doc;
    for (const r of k['resources'] as string[]) expect(existsSync(path.join(BASE, r)), r).toBe(true);
    for (const g of k['configMapGenerator'] as { files: string[] }[]) for (const f of g.files) expect(existsSync(path.join(BASE, f.split('=').at(-1)!)), f).toBe(true);
    const ds = find('DaemonSet');
    expect(k['images'].map((i: { name: string }) => i.name)).toContain(ds['spec'].template.spec.containers[0].image);
    // Secrets are created by the operator, never shipped with values.
    expect(k['resources']).not.toContain('secrets.example.yaml');
  });
});

describe('the DaemonSet and the configuration it runs', () => {
  const ds = find('DaemonSet');
  const pod = ds['spec'].template.spec;
  const container = pod.containers[0];
  const configText = readFileSync(path.join(BASE, 'spindle.yaml'), 'utf8');
  const config = YAML.parse(configText) as Doc;
  const secretEnv = Object.fromEntries(
    (container.env as Doc[]).filter((e) => e['valueFrom']?.secretKeyRef !== undefined).map((e) => [e['name'], 'a-test-value-0123456789']),
  );

  it('passes spindle check-config (the real CLI) as every node of the cluster', () => {
    const nodes = (config['cluster'].nodes as { id: string }[]).map((n) => n.id);
    expect(nodes.length).toBeGreaterThanOrEqual(2);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-deploy-'));
    try {
      const file = path.join(dir, 'spindle.yaml');
      writeFileSync(file, configText);
      for (const node of nodes) {
        const r = spawnSync(process.execPath, [MAIN, 'check-config', '--config', file], {
          cwd: REPO,
          encoding: 'utf8',
          env: { ...process.env, ...secretEnv, SPINDLE_NODE_ID: node },
        });
        expect(r.status, `${node}: ${r.stdout}${r.stderr}`).toBe(0);
        expect(r.stdout).toContain(`node ${node}`);
        expect(r.stdout).toContain('bearer token required');
      }
      // Without the Secrets' variables it is refused, naming each field.
      const bare = spawnSync(process.execPath, [MAIN, 'check-config', '--config', file], { cwd: REPO, encoding: 'utf8', env: { ...process.env, SPINDLE_NODE_ID: nodes[0] } });
      expect(bare.status).toBe(2);
      expect(bare.stderr).toContain('api.tokenEnv');
      expect(bare.stderr).toContain('cluster.redis.passwordEnv');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fills every environment variable the configuration names from a Secret, and the node id from the downward API', () => {
    const env = new Map((container.env as Doc[]).map((e) => [e['name'] as string, e['valueFrom']]));
    expect(env.get('SPINDLE_NODE_ID')).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
    const named = [...configText.matchAll(/(?:tokenEnv|passwordEnv|secretEnv): (\w+)/g)].map((m) => m[1]!);
    expect(named.length).toBe(3);
    const secrets = manifests().filter((m) => m.doc['kind'] === 'Secret');
    for (const v of named) {
      const ref = env.get(v)?.secretKeyRef as { name: string; key: string } | undefined;
      expect(ref, v).toBeDefined();
      const s = secrets.find((x) => x.doc['metadata'].name === ref!.name);
      expect(s, `${v}: Secret ${ref!.name}`).toBeDefined();
      expect(Object.keys(s!.doc['stringData'])).toContain(ref!.key);
    }
    // No secret in the ConfigMap's configuration.
    expect(configText).not.toMatch(/\bsecret: |password: |token: /);
  });

  it('runs on the host network, unprivileged, with probes on admin API endpoints that exist', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const parsed = parseConfig(configText, 'spindle.yaml', { hostname: 'x', cores: 2, cwd: '/', vars: { ...secretEnv, SPINDLE_NODE_ID: config['cluster'].nodes[0].id } });
    const ports = new Map((container.ports as Doc[]).map((p) => [p['name'], p['containerPort']]));
    expect(ports.get('api')).toBe(parsed.api!.listen.port);
    expect(ports.get('iscsi')).toBe(parsed.cluster!.nodes[0]!.portals[0]!.port);
    // Ports above 1023: no capability needed for a non-root process.
    for (const p of ports.values()) expect(p).toBeGreaterThan(1023);
    const publicGets = new Set(ROUTES.filter((r) => r.method === 'GET' && r.public === true).map((r) => r.path));
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const get = container[probe].httpGet as { path: string; port: string };
      // kubelet sends no token: the endpoint must answer without one.
      expect(publicGets.has(get.path), `${probe} ${get.path}`).toBe(true);
      expect(ports.has(get.port), `${probe} port ${get.port}`).toBe(true);
    }
    expect(container.readinessProbe.httpGet.path).toBe('/api/v1/ready');
    expect(container.livenessProbe.httpGet.path).toBe('/api/v1/health');
  });

  it('drains through a preStop hook that is a valid spindle command and fits the grace period', () => {
    const cmd = container.lifecycle.preStop.exec.command as string[];
    expect(cmd.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    const line = cmd[2]!.replace(/\s*\|\|\s*true$/, '').replaceAll('"$SPINDLE_NODE_ID"', 'storage-1');
    const args = line.split(/\s+/).slice(1);
    const parsed = parseCli(args);
    expect(parsed).toMatchObject({ kind: 'node-admin', action: 'drain', target: 'storage-1', configPath: '/etc/spindle/spindle.yaml' });
    const waitSec = (parsed as { waitSec: number }).waitSec;
    // After the hook, SIGTERM drains what is left (15 s) and flushes: all within the grace period.
    expect(waitSec + 15 + 5).toBeLessThanOrEqual(pod.terminationGracePeriodSeconds);
    expect(container.args).toEqual(['serve', '--config', '/etc/spindle/spindle.yaml', '--json']);
    expect(parseCli(container.args)).toMatchObject({ kind: 'serve', configPath: '/etc/spindle/spindle.yaml' });
    // The configuration the hook names is the one mounted.
    const mount = (container.volumeMounts as Doc[]).find((m) => m['name'] === 'config');
    expect(mount?.['mountPath']).toBe('/etc/spindle');
    expect(pod.volumes.find((v: Doc) => v['name'] === 'config').configMap.name).toBe('spindle-config');
  });

  it('exposes /metrics through a Service and a ServiceMonitor that carries the token', () => {
    const svc = find('Service', 'spindle-metrics');
    const sm = find('ServiceMonitor');
    expect(svc['spec'].selector).toEqual(ds['spec'].selector.matchLabels);
    expect(svc['spec'].ports[0].targetPort).toBe('api');
    for (const [k, v] of Object.entries(sm['spec'].selector.matchLabels as Record<string, string>)) expect(svc['metadata'].labels[k]).toBe(v);
    const ep = sm['spec'].endpoints[0];
    expect(ep.port).toBe(svc['spec'].ports[0].name);
    expect(ROUTES.some((r) => r.method === 'GET' && r.path === ep.path)).toBe(true);
    expect(ep.authorization).toEqual({ type: 'Bearer', credentials: { name: 'spindle-api', key: 'token' } });
  });

  it('points the configuration at the Redis Sentinels the base deploys', () => {
    const sts = find('StatefulSet', 'spindle-redis');
    const svc = find('Service', 'spindle-redis');
    const sentinels = config['cluster'].redis.sentinels as string[];
    expect(sentinels).toHaveLength(sts['spec'].replicas);
    sentinels.forEach((s, i) => expect(s).toBe(`spindle-redis-${i}.${svc['metadata'].name}.spindle.svc.cluster.local:26379`));
    expect(sts['spec'].serviceName).toBe(svc['metadata'].name);
  });
});

describe('Redis init script', () => {
  function runInit(hostname: string, sentinelAnswer: string): { redis: string; sentinel: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-redis-init-'));
    try {
      const bin = path.join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(path.join(bin, 'hostname'), `#!/bin/sh\necho ${hostname}\n`);
      writeFileSync(path.join(bin, 'redis-cli'), `#!/bin/sh\n${sentinelAnswer === '' ? 'exit 1' : `echo ${sentinelAnswer}; echo 6379`}\n`);
      chmodSync(path.join(bin, 'hostname'), 0o755);
      chmodSync(path.join(bin, 'redis-cli'), 0o755);
      const r = spawnSync('/bin/sh', [path.join(BASE, 'redis-init.sh')], {
        encoding: 'utf8',
        env: { PATH: `${bin}:/usr/bin:/bin`, POD_NAMESPACE: 'spindle', REDIS_PASSWORD: 'pw', REDIS_RUN_DIR: path.join(dir, 'out') },
      });
      expect(r.status, r.stderr).toBe(0);
      return { redis: readFileSync(path.join(dir, 'out/redis.conf'), 'utf8'), sentinel: readFileSync(path.join(dir, 'out/sentinel.conf'), 'utf8') };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('starts pod 0 as the master when no Sentinel knows one, the others as its replicas', () => {
    const first = runInit('spindle-redis-0', '');
    expect(first.redis).not.toContain('replicaof');
    expect(first.sentinel).toContain('sentinel monitor spindle spindle-redis-0.spindle-redis.spindle.svc.cluster.local 6379 2');
    const second = runInit('spindle-redis-1', '');
    expect(second.redis).toContain('replicaof spindle-redis-0.spindle-redis.spindle.svc.cluster.local 6379');
    expect(second.redis).toContain('appendfsync always');
  });

  it('follows the master the Sentinels name after a failover', () => {
    const master = 'spindle-redis-2.spindle-redis.spindle.svc.cluster.local';
    const back = runInit('spindle-redis-0', master);
    expect(back.redis).toContain(`replicaof ${master} 6379`);
    expect(back.sentinel).toContain(`sentinel monitor spindle ${master} 6379 2`);
    expect(runInit('spindle-redis-2', master).redis).not.toContain('replicaof');
  });
});

describe('Dockerfile, systemd unit, Grafana dashboard', () => {
  it('Dockerfile: multi-stage, the exact Node of package.json, non-root, runs spindle serve', () => {
    const text = readFileSync(path.join(REPO, 'deploy/Dockerfile'), 'utf8');
    const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(text)?.[1];
    expect(base).toBe(`node:${pkg.devDependencies.node}-trixie-slim`);
    expect(text.match(/^FROM /gm)).toHaveLength(2);
    expect(text).toMatch(/^USER 10001:10001$/m);
    expect(text).toMatch(/^ENTRYPOINT \["\/usr\/local\/bin\/spindle"\]$/m);
    const cmd = JSON.parse(/^CMD (.+)$/m.exec(text)![1]!) as string[];
    expect(parseCli(cmd)).toMatchObject({ kind: 'serve', configPath: '/etc/spindle/spindle.yaml' });
    expect(text).toMatch(/^EXPOSE 3260\/tcp 9470\/tcp$/m);
    for (const dir of ['bin', 'src']) expect(text).toContain(`COPY ${dir} ./${dir}`);
  });

  it('systemd: waits for readiness, reloads with SIGHUP, drains before stopping; every command parses', () => {
    const unit = readFileSync(path.join(REPO, 'deploy/systemd/spindle.service'), 'utf8');
    const value = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
    expect(value('Type')).toEqual(['exec']);
    expect(value('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    const spindleArgs = (line: string) => line.replace(/^-/, '').split(/\s+/).slice(1).map((a) => a.replace('${SPINDLE_NODE_ID}', 'node-1'));
    expect(parseCli(spindleArgs(value('ExecStart')[0]!))).toMatchObject({ kind: 'serve' });
    expect(parseCli(spindleArgs(value('ExecStartPost')[0]!))).toMatchObject({ kind: 'api', command: 'status', waitSec: 120 });
    const stop = parseCli(spindleArgs(value('ExecStop')[0]!));
    expect(stop).toMatchObject({ kind: 'node-admin', action: 'drain', target: 'node-1' });
    expect((stop as { waitSec: number }).waitSec + 15).toBeLessThan(Number(value('TimeoutStopSec')[0]));
    expect(value('User')).toEqual(['spindle']);
    expect(value('NoNewPrivileges')).toEqual(['yes']);
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=yes/m);
  });

  it('Grafana: a valid dashboard whose queries use only metrics spindle exports', () => {
    const dash = JSON.parse(readFileSync(path.join(REPO, 'deploy/grafana/spindle-dashboard.json'), 'utf8')) as Doc;
    const panels = dash['panels'] as Doc[];
    const ids = panels.map((p) => p['id']);
    expect(new Set(ids).size).toBe(ids.length);
    const exprs = panels.flatMap((p) => (p['targets'] ?? []).map((t: Doc) => t['expr'] as string));
    expect(exprs.length).toBeGreaterThan(20);
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bspindle_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
    for (const m of used) expect(Object.keys(METRICS), m).toContain(m);
    // The LU, session, cluster and data plane families all have panels.
    for (const m of ['spindle_lu_latency_seconds', 'spindle_session_data_in_bytes_total', 'spindle_cluster_redis_rtt_seconds', 'spindle_ring_occupancy', 'spindle_slab_bytes_in_use']) expect(used.has(m), m).toBe(true);
  });
});

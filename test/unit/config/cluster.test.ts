/**
 * The `cluster` section: one file for every node; which node this process is; what a
 * cluster rules out (RAM, buffered or thin devices, portals no node serves) and the
 * identifiers every node derives alike.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type ConfigEnv } from '../../../src/supervisor/config/load.ts';
import { nodePortGroup, portalPortId } from '../../../src/supervisor/cluster/ids.ts';

const ENV: ConfigEnv = { hostname: 'host-x', cores: 2, cwd: '/srv', vars: {} };

function yaml(extra = '', devices = "  - name: shared\n    file: { path: /srv/shared.img, size: 64MiB }"): string {
  return `
clusterId: c1
nodeId: a
stateDir: /var/lib/spindle/{node}
${extra}
cluster:
  redis: { url: 'redis://10.0.0.9:6379/2' }
  lease: { ttlSec: 4 }
  nodes:
    - id: a
      portals: ['10.0.0.1:3260']
    - id: b
      portals: ['10.0.0.2:3260']
devices:
${devices}
targets:
  - iqn: iqn.2026-11.io.spindle:c
    portals: ['10.0.0.1:3260', '10.0.0.2:3260']
    luns: { 0: shared }
`;
}

function problems(text: string, env: ConfigEnv = ENV): string[] {
  try {
    parseConfig(text, 'c.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('cluster configuration', () => {
  it('parses the section, derives lease defaults in ms, and defaults devices to direct I/O', () => {
    const c = parseConfig(yaml(), 'c.yaml', ENV);
    expect(c.nodeId).toBe('a');
    expect(c.stateDir).toBe('/var/lib/spindle/a');
    expect(c.cluster?.redis).toEqual({ url: 'redis://10.0.0.9:6379/2', waitReplicas: 0 });
    expect(c.cluster?.lease).toEqual({ ttlMs: 4000, renewMs: 800, marginMs: 1200 });
    expect(c.cluster?.nodes.map((n) => n.id)).toEqual(['a', 'b']);
    expect(c.devices[0]?.direct).toBe(true);
  });

  it('--node wins over SPINDLE_NODE_ID, which wins over nodeId', () => {
    expect(parseConfig(yaml(), 'c.yaml', { ...ENV, vars: { SPINDLE_NODE_ID: 'b' } }).nodeId).toBe('b');
    const both = parseConfig(yaml(), 'c.yaml', { ...ENV, node: 'a', vars: { SPINDLE_NODE_ID: 'b' } });
    expect(both.nodeId).toBe('a');
    expect(both.stateDir).toBe('/var/lib/spindle/a');
  });

  it('refuses a node id that is not in cluster.nodes', () => {
    expect(problems(yaml(), { ...ENV, node: 'zz' })).toEqual([
      'nodeId: this node is "zz", which is not one of cluster.nodes (a, b): start it with --node ID or SPINDLE_NODE_ID',
    ]);
  });

  it('SPINDLE_REDIS_URL replaces the Redis endpoint for this process', () => {
    const c = parseConfig(yaml(), 'c.yaml', { ...ENV, vars: { SPINDLE_REDIS_URL: 'redis://127.0.0.1:7000' } });
    expect(c.cluster?.redis.url).toBe('redis://127.0.0.1:7000');
  });

  it('reads the password from a file or the environment, never from the file itself', () => {
    const withEnv = yaml().replace("redis: { url: 'redis://10.0.0.9:6379/2' }", "redis: { url: 'redis://10.0.0.9:6379', username: spindle, passwordEnv: REDIS_PW }");
    expect(parseConfig(withEnv, 'c.yaml', { ...ENV, vars: { REDIS_PW: 's3cret' } }).cluster?.redis).toEqual({
      url: 'redis://10.0.0.9:6379',
      username: 'spindle',
      password: 's3cret',
      waitReplicas: 0,
    });
    expect(problems(withEnv)).toEqual(['cluster.redis.passwordEnv: environment variable REDIS_PW is not set']);
    const withFile = yaml().replace("redis: { url: 'redis://10.0.0.9:6379/2' }", 'redis: { url: "redis://10.0.0.9:6379", passwordFile: pw.txt }');
    const read = (p: string) => {
      if (p !== '/srv/pw.txt') throw new Error(`ENOENT: ${p}`);
      return 'from-file\n';
    };
    expect(parseConfig(withFile, 'c.yaml', { ...ENV, readFile: read }).cluster?.redis.password).toBe('from-file');
    const inline = yaml().replace("redis: { url: 'redis://10.0.0.9:6379/2' }", "redis: { url: 'redis://:oops@10.0.0.9:6379' }");
    expect(problems(inline)[0]).toContain('must not hold a password: use passwordFile or passwordEnv');
  });

  it('takes sentinels with a master name instead of a URL', () => {
    const s = yaml().replace("redis: { url: 'redis://10.0.0.9:6379/2' }", "redis: { sentinels: ['10.0.0.7:26379', '10.0.0.8:26379'], masterName: store }");
    expect(parseConfig(s, 'c.yaml', ENV).cluster?.redis).toEqual({
      sentinels: [
        { host: '10.0.0.7', port: 26379 },
        { host: '10.0.0.8', port: 26379 },
      ],
      masterName: 'store',
      // Sentinel means replicas: a reservation change waits for one (Redis WAIT).
      waitReplicas: 1,
    });
    const noPort = yaml().replace("redis: { url: 'redis://10.0.0.9:6379/2' }", "redis: { sentinels: ['10.0.0.7'] }");
    expect(problems(noPort)).toEqual(['cluster.redis.sentinels[0]: must be a Sentinel address "host:port", e.g. "10.0.0.7:26379", got the string "10.0.0.7"']);
  });

  it('takes waitReplicas from 0 to 16, for either kind of Redis', () => {
    const withWait = (redis: string) => yaml().replace("redis: { url: 'redis://10.0.0.9:6379/2' }", redis);
    expect(parseConfig(withWait("redis: { url: 'redis://10.0.0.9:6379', waitReplicas: 2 }"), 'c.yaml', ENV).cluster?.redis.waitReplicas).toBe(2);
    expect(parseConfig(withWait("redis: { sentinels: ['10.0.0.7:26379'], waitReplicas: 0 }"), 'c.yaml', ENV).cluster?.redis.waitReplicas).toBe(0);
    expect(problems(withWait("redis: { url: 'redis://10.0.0.9:6379', waitReplicas: 17 }"))).toEqual([
      expect.stringMatching(/^cluster\.redis\.waitReplicas: /),
    ]);
    expect(problems(withWait("redis: { url: 'redis://10.0.0.9:6379', waitReplicas: -1 }"))).toEqual([
      expect.stringMatching(/^cluster\.redis\.waitReplicas: /),
    ]);
  });

  it('reports every cluster problem at once, with its path', () => {
    const bad = `
nodeId: a
cluster:
  redis: { url: 'redis://r:6379', sentinels: ['s:26379'], masterName: m, passwordFile: /x, passwordEnv: Y }
  lease: { ttlSec: 4, renewSec: 2, marginSec: 1 }
  nodes:
    - id: a
      portals: ['10.0.0.1:3260', '10.0.0.3:3260']
    - id: a
      portals: ['10.0.0.1:3260']
devices:
  - name: r
    ram: { size: 1MiB }
  - name: f
    file: { path: /srv/f.img, size: 1MiB }
    direct: false
    thin: true
targets:
  - iqn: iqn.2026-11.io.spindle:c
    portals: ['10.0.0.1:3260', '10.0.0.9:3260']
    luns: { 0: r, 1: f }
aluaStates: { '10.0.0.1:3260': standby }
`;
    expect(problems(bad)).toEqual(
      expect.arrayContaining([
        'cluster.redis: url and sentinels are mutually exclusive',
        'cluster.redis: passwordFile and passwordEnv are mutually exclusive',
        'cluster.lease.renewSec: must be at most (ttlSec - marginSec) / 2 = 1.5: a node must get two tries to renew before it fences itself',
        'cluster.nodes[1].portals[0]: portal 10.0.0.1:3260 is already served by cluster.nodes[0]',
        'cluster.nodes[1].id: duplicate node id (also nodes[0])',
        'targets[0].portals[1]: portal 10.0.0.9:3260 is served by no cluster node: add it to one of cluster.nodes[].portals',
        'devices[0].ram: a RAM device cannot be shared by cluster nodes (each node would have its own): use storage every node reaches (file)',
        'devices[1].direct: a cluster device must use direct I/O: with the page cache a node could serve a stale read of data another node wrote',
        'devices[1].thin: thin provisioning is not available on cluster devices (its allocation map is held by one node)',
        'aluaStates: not used in a cluster: node states come from spindle node drain|undrain and SET TARGET PORT GROUPS',
      ]),
    );
  });

  it("refuses a node portal that no target lists", () => {
    const extra = yaml().replace("portals: ['10.0.0.2:3260']", "portals: ['10.0.0.2:3260', '10.0.0.2:3261']");
    expect(problems(extra)).toEqual(["cluster.nodes[1].portals[1]: no target lists 10.0.0.2:3261: add it to a target's portals"]);
  });

  it('derives the same port group and port ids on every node, stable under edits elsewhere', () => {
    const a = parseConfig(yaml(), 'c.yaml', ENV);
    const b = parseConfig(yaml('workers: { session: 1, lun: 1 }'), 'c.yaml', { ...ENV, node: 'b' });
    const ids = (c: typeof a) => c.cluster!.nodes.map((n) => [nodePortGroup(n), ...n.portals.map((p) => portalPortId(n.id, p))]);
    expect(ids(a)).toEqual(ids(b));
    const [ga, gb] = ids(a).map((x) => x[0]);
    expect(ga).not.toBe(gb);
    const explicit = parseConfig(yaml().replace("    - id: b\n", "    - id: b\n      portGroup: 7\n"), 'c.yaml', ENV);
    expect(nodePortGroup(explicit.cluster!.nodes[1]!)).toBe(7);
  });
});

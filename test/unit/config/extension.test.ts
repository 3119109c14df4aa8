/**
 * Growing the schema is adding rows. This builds the configuration as it will look with the
 * next planned additions, a `federation` section (Redis endpoint, sentinels, TLS; nodes with their
 * portals; lease timings) and the `block` and `null` device kinds beside `ram` and `file`,
 * from the real rows plus new ones only, and shows that validation (every error, paths,
 * did-you-mean, cross-field rules), the output type, the reload policy and the README tables
 * all follow without touching the machinery.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { configTables, README_PATH, updateReadme } from '../../../src/supervisor/config/docs.ts';
import { formatPath } from '../../../src/supervisor/config/issues.ts';
import {
  field,
  fixedKeys,
  list,
  Reload,
  reloadPolicy,
  section,
  validate,
  type ConfigEnv,
  type Infer,
} from '../../../src/supervisor/config/rows.ts';
import {
  configFields,
  configRules,
  deviceFields,
  deviceListOptions,
  deviceRules,
} from '../../../src/supervisor/config/schema.ts';
import { bool, fsPath, identifier, int, size, text } from '../../../src/supervisor/config/values.ts';

const ENV: ConfigEnv = { hostname: 'node-a', cores: 2, cwd: '/srv' };

// ---- new device kinds: two rows with `variant: 'backing'` ----
// (Raw values are written as JS objects here. In YAML a plain `null:` key is the null scalar,
// which the yaml package turns into the key "": the real kind needs another name, or quotes.)

const blockBacking = section({
  path: field(fsPath('file'), {
    required: 'path of the block device is required',
    reload: Reload.restart,
    doc: 'the block device, e.g. `/dev/sdb`; its size is the device size',
  }),
});
const nullBacking = section({
  size: field(size(), {
    required: 'size is required, e.g. 1GiB',
    reload: Reload.grow,
    doc: 'capacity; reads return zeros and writes are discarded',
  }),
});
const devices = list(
  section(
    {
      ...deviceFields,
      block: field(blockBacking, { variant: 'backing', doc: 'a host block device' }),
      null: field(nullBacking, { variant: 'backing', doc: 'a device that stores nothing (benchmarks)' }),
    },
    { table: 'devices', rules: deviceRules },
  ),
  deviceListOptions,
);

// ---- a new top-level section: one row ----

const hostPort = text('`"host:port"`');
const federation = section(
  {
    redis: field(
      section({
        endpoint: field(hostPort, {
          required: 'endpoint is required, e.g. "redis:6379"',
          doc: 'the Redis server, or the master name with `sentinels`',
        }),
        sentinels: field(list(hostPort, { empty: 'at least one sentinel, or leave sentinels out' }), {
          doc: 'Redis Sentinel endpoints',
        }),
        username: field(text('ACL user name'), { doc: 'Redis ACL user' }),
        tls: field(bool(), { default: false, doc: 'TLS to Redis' }),
      }),
      { required: 'redis is required', doc: 'where the federation state lives' },
    ),
    nodes: field(
      list(
        section(
          {
            id: field(identifier(253), { required: 'id is required', doc: "the node's `nodeId`" }),
            portals: field(list(hostPort, { empty: 'at least one portal is required' }), {
              required: 'portals are required',
              doc: "the node's portals",
            }),
          },
          { table: 'federation-nodes' },
        ),
        { empty: 'at least one node is required' },
      ),
      { required: 'nodes are required', doc: 'the nodes of the federation, below' },
    ),
    lease: field(
      section(
        {
          ttlMs: field(int(1000, 60000), {
            default: 10000,
            doc: 'a node that did not renew for this long is dead',
          }),
          renewMs: field(int(100, 30000), { default: 3000, doc: 'how often a node renews its lease' }),
        },
        {
          rules: [
            (v, r) => {
              if (v.ttlMs === undefined || v.renewMs === undefined || v.renewMs * 2 <= v.ttlMs) return;
              r.report(['renewMs'], `must be at most half of ttlMs (${v.ttlMs}), got ${v.renewMs}`);
            },
          ],
        },
      ),
      { default: {}, doc: '' },
    ),
  },
  { table: 'federation' },
);

const extended = section(
  {
    ...configFields,
    devices: field(devices, { default: [], reload: Reload.live, doc: 'backing devices, below' }),
    federation: field(federation, { reload: Reload.restart, doc: 'federation membership, below' }),
  },
  { table: 'top', rules: configRules },
);

function run(raw: unknown) {
  const { value, issues } = validate(extended, raw, ENV);
  return { value, issues: issues.map((i) => `${formatPath(i.segments)}: ${i.message}`) };
}

const TARGET = {
  iqn: 'iqn.2026-11.io.spindle:t',
  portals: ['10.0.0.1:3260'],
  luns: { 0: 'disk', 1: 'zero' },
};

describe('a schema grown by rows', () => {
  it('derives the new output types', () => {
    type Config = Infer<typeof extended>;
    // Without `federation` spindle runs as a single node: the section is optional.
    type Cluster = NonNullable<Config['federation']>;
    expectTypeOf<Cluster['lease']['ttlMs']>().toEqualTypeOf<number>();
    expectTypeOf<Cluster['redis']['sentinels']>().toEqualTypeOf<readonly string[] | undefined>();
    expectTypeOf<Extract<Config['devices'][number]['backing'], { type: 'block' }>>().toEqualTypeOf<{
      readonly type: 'block';
      readonly path: string;
    }>();
  });

  it('validates the new section and kinds, applies their defaults, keeps the old rules', () => {
    const r = run({
      federation: { redis: { endpoint: 'redis:6379' }, nodes: [{ id: 'node-a', portals: ['10.0.0.1:3260'] }] },
      devices: [
        { name: 'disk', block: { path: 'dev/sdb' } },
        { name: 'zero', null: { size: '1GiB' }, blockSize: 4096 },
      ],
      targets: [TARGET],
    });
    expect(r.issues).toEqual([]);
    expect(r.value?.federation).toEqual({
      redis: { endpoint: 'redis:6379', tls: false },
      nodes: [{ id: 'node-a', portals: ['10.0.0.1:3260'] }],
      lease: { ttlMs: 10000, renewMs: 3000 },
    });
    expect(r.value?.devices.map((d) => d.backing)).toEqual([
      { type: 'block', path: '/srv/dev/sdb' },
      { type: 'null', size: 2 ** 30 },
    ]);
  });

  it('reports every problem of the new rows at once, with paths and suggestions', () => {
    const r = run({
      federation: {
        redis: { endpont: 'redis:6379', tls: 'yes' },
        nodes: [],
        lease: { ttlMs: 2000, renewMs: 1500 },
      },
      devices: [
        { name: 'disk', ram: { size: '1MiB' }, block: { path: '/dev/sdb' } },
        { name: 'zero', null: { size: 1000 } },
        { name: 'none' },
        { name: 'blk', block: { path: '/dev/sdc', size: '1GiB' } },
      ],
      targets: [TARGET],
    });
    expect(r.issues).toEqual([
      'devices[0]: ram and block are mutually exclusive',
      // The size rule of every device applies to the new kind.
      'devices[1].null.size: size 1000 bytes is not a multiple of the block size (512)',
      'devices[2]: exactly one of ram, file, block, null or cdrom is required',
      'devices[3].block.size: unknown key "size" (allowed: path)',
      'federation.redis.endpont: unknown key "endpont" (did you mean "endpoint"?)',
      'federation.redis.endpoint: endpoint is required, e.g. "redis:6379"',
      'federation.redis.tls: must be true or false, got the string "yes"',
      'federation.nodes: at least one node is required',
      'federation.lease.renewMs: must be at most half of ttlMs (2000), got 1500',
    ]);
  });

  it('derives the reload policy of the new rows', () => {
    const top = reloadPolicy(extended, undefined, 'config');
    expect(fixedKeys(top)).toEqual([
      'clusterId',
      'nodeId',
      'stateDir',
      'workers',
      'logging',
      'iscsi',
      'cluster',
      'api',
      'federation',
    ]);
    const d = reloadPolicy(extended.fields.devices.node, Reload.live, 'devices[]');
    expect(d.variants['backing']).toEqual({
      ram: { size: 'grow' },
      file: { path: 'restart', size: 'grow' },
      block: { path: 'restart' },
      null: { size: 'grow' },
      cdrom: { path: 'live' },
    });
  });

  it('documents the new rows, and refuses to leave a new table out of the README', () => {
    const tables = configTables(extended);
    expect(tables.get('top')?.at(-1)).toEqual({
      key: '`federation`',
      default: 'none',
      values: '`{ redis, nodes, lease }`',
      reload: 'restart',
      meaning: 'federation membership, below',
    });
    expect(tables.get('federation')?.map((r) => [r.key, r.default])).toEqual([
      ['`redis`', 'required'],
      ['`redis.endpoint`', 'required'],
      ['`redis.sentinels`', 'none'],
      ['`redis.username`', 'none'],
      ['`redis.tls`', '`false`'],
      ['`nodes`', 'required'],
      ['`lease.ttlMs`', '`10000`'],
      ['`lease.renewMs`', '`3000`'],
    ]);
    expect(tables.get('federation-nodes')?.map((r) => r.key)).toEqual(['`id`', '`portals`']);
    expect(tables.get('devices')?.filter((r) => /^`(block|null)[.`]/.test(r.key))).toEqual([
      {
        key: '`block`',
        default: 'one of `ram`, `file`, `block`, `null`, `cdrom`',
        values: '`{ path }`',
        reload: 'restart',
        meaning: 'a host block device',
      },
      {
        key: '`block.path`',
        default: 'required',
        values: 'path (relative: from the working directory)',
        reload: 'restart',
        meaning: 'the block device, e.g. `/dev/sdb`; its size is the device size',
      },
      {
        key: '`null`',
        default: 'one of `ram`, `file`, `block`, `null`, `cdrom`',
        values: '`{ size }`',
        reload: 'grow only',
        meaning: 'a device that stores nothing (benchmarks)',
      },
      {
        key: '`null.size`',
        default: 'required',
        values: 'size, e.g. `64MiB`, `1GiB`',
        reload: 'grow only',
        meaning: 'capacity; reads return zeros and writes are discarded',
      },
    ]);
    const readme = readFileSync(README_PATH, 'utf8');
    expect(() => updateReadme(readme, tables)).toThrow(
      'README.md has no markers for config:federation, config:federation-nodes',
    );
  });
});

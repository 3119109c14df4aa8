/**
 * The device kinds of issue 14 in the configuration: `block`, `null` (also written as a
 * bare YAML `null:` key) and `cdrom`; their rules, the cluster rules that concern them,
 * and what a reload may change (a CD-ROM's image is a medium change).
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, parseConfig, type ConfigEnv } from '../../../src/supervisor/config/load.ts';
import { planReload } from '../../../src/supervisor/reload.ts';
import { Topology } from '../../../src/supervisor/topology.ts';

const ENV: ConfigEnv = { hostname: 'host-a', cores: 4, cwd: '/srv/spindle' };
const IQN = 'iqn.2026-11.io.spindle:demo';

function yamlWith(devices: string, extra = ''): string {
  return `${extra}
devices:
${devices}
targets:
  - iqn: ${IQN}
    portals: ['127.0.0.1:3260']
    luns: { 0: d }
`;
}

function issues(text: string): string[] {
  try {
    parseConfig(text, 'test.yaml', ENV);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected the configuration to be rejected');
}

describe('device kinds', () => {
  it("block: a path, optionally a size (with prefix to export a prefix); direct I/O is the LUN worker's default", () => {
    const c = parseConfig(yamlWith('  - { name: d, block: { path: /dev/disk/by-id/x } }'), 't', ENV);
    expect(c.devices[0]).toMatchObject({
      backing: { type: 'block', path: '/dev/disk/by-id/x' },
      blockSize: 512,
    });
    expect(c.devices[0]!.direct).toBeUndefined();
    expect(c.devices[0]!.thin).toBeUndefined(); // the LUN worker asks the device
    const sized = parseConfig(
      yamlWith(
        '  - { name: d, block: { path: dev/x, size: 1GiB, prefix: true }, blockSize: 4096, thin: false }',
      ),
      't',
      ENV,
    );
    expect(sized.devices[0]).toMatchObject({
      backing: { type: 'block', path: '/srv/spindle/dev/x', size: 1 << 30, prefix: true },
      blockSize: 4096,
      thin: false,
    });
  });

  it('null: written `null:` (the YAML null key) or `"null":`', () => {
    for (const key of ['null', '"null"']) {
      const c = parseConfig(yamlWith(`  - name: d\n    ${key}: { size: 64MiB }`), 't', ENV);
      expect(c.devices[0]!.backing).toEqual({ type: 'null', size: 64 << 20 });
    }
    expect(issues(yamlWith('  - name: d\n    null: { size: 1000 }'))).toEqual([
      'devices[0].null.size: size 1000 bytes is not a multiple of the block size (512)',
    ]);
  });

  it('cdrom: an image or none, 2048-byte blocks by default', () => {
    const c = parseConfig(yamlWith('  - { name: d, cdrom: { path: /srv/iso/debian.iso } }'), 't', ENV);
    expect(c.devices[0]).toMatchObject({
      backing: { type: 'cdrom', path: '/srv/iso/debian.iso' },
      blockSize: 2048,
    });
    const empty = parseConfig(yamlWith('  - { name: d, cdrom: {} }'), 't', ENV);
    expect(empty.devices[0]).toMatchObject({ backing: { type: 'cdrom' }, blockSize: 2048 });
  });

  it('refuses what the kinds do not have, every problem at once', () => {
    expect(
      issues(
        yamlWith(`  - { name: d, cdrom: { path: /x.iso }, blockSize: 512, thin: true, physicalBlockSize: 4096 }
  - { name: e, ram: { size: 1MiB }, blockSize: 2048 }
  - { name: f, block: { path: /dev/x, prefix: true } }
  - { name: g, block: { size: 1GiB } }
  - { name: h, null: { size: 1MiB }, file: { path: /x, size: 1MiB } }`),
      ),
    ).toEqual([
      'devices[0].blockSize: a cdrom has 2048-byte blocks, got 512',
      'devices[0].thin: a cdrom is read-only: it has no thin provisioning',
      'devices[0].physicalBlockSize: a cdrom has 2048-byte blocks only',
      'devices[1].blockSize: 2048 is the block size of a cdrom; a disk has 512 or 4096',
      'devices[2].block.prefix: prefix exports the first `size` bytes of the device: set size too',
      'devices[3].block.path: path of the block device is required, e.g. /dev/disk/by-id/...',
      'devices[4]: file and null are mutually exclusive',
    ]);
  });
});

describe('devices in a cluster', () => {
  const cluster = `nodeId: a
cluster:
  redis: { url: 'redis://127.0.0.1:6379' }
  nodes: [{ id: a, portals: ['127.0.0.1:3260'] }]
`;
  it('block devices must keep direct I/O; thin block devices, null devices and CD-ROM images are fine', () => {
    expect(issues(yamlWith('  - { name: d, block: { path: /dev/x }, direct: false }', cluster))).toEqual([
      'devices[0].direct: a cluster device must use direct I/O: with the page cache a node could serve a stale read of data another node wrote',
    ]);
    const ok = parseConfig(
      yamlWith(
        `  - { name: d, block: { path: /dev/x }, thin: true }
  - { name: n, null: { size: 1GiB } }
  - { name: c, cdrom: { path: /x.iso } }`,
        cluster,
      ),
      't',
      ENV,
    );
    expect(ok.devices.map((d) => d.backing.type)).toEqual(['block', 'null', 'cdrom']);
  });
});

describe('reloading devices', () => {
  const doc = (devices: Record<string, unknown>[]): string =>
    stringify({ devices, targets: [{ iqn: IQN, portals: ['127.0.0.1:3260'], luns: { 0: 'cd', 1: 'blk' } }] });
  const current = (cdPath?: string, blockSize?: string): string =>
    doc([
      { name: 'cd', cdrom: cdPath === undefined ? {} : { path: cdPath } },
      {
        name: 'blk',
        block: blockSize === undefined ? { path: '/dev/x' } : { path: '/dev/x', size: blockSize },
      },
    ]);
  const planOf = (before: string, after: string) => {
    const cur = parseConfig(before, 'a', ENV);
    return planReload(cur, parseConfig(after, 'b', ENV), new Topology(cur, 1));
  };

  it('another image (or none) in a CD-ROM drive is a medium change', () => {
    expect(planOf(current('/a.iso'), current('/b.iso'))).toMatchObject({
      plan: { media: [{ name: 'cd', path: '/b.iso' }], empty: false },
    });
    expect(planOf(current('/a.iso'), current())).toMatchObject({
      plan: { media: [{ name: 'cd', path: null }] },
    });
    expect(planOf(current(), current('/a.iso'))).toMatchObject({
      plan: { media: [{ name: 'cd', path: '/a.iso' }] },
    });
    expect(planOf(current('/a.iso'), current('/a.iso'))).toMatchObject({ plan: { media: [], empty: true } });
  });

  it('a block device grows by a size; removing the size needs a restart', () => {
    expect(planOf(current(undefined, '1GiB'), current(undefined, '2GiB'))).toMatchObject({
      plan: { grow: [{ name: 'blk', sizeBytes: 2 * 2 ** 30 }] },
    });
    expect(planOf(current(), current(undefined, '2GiB'))).toMatchObject({
      plan: { grow: [{ name: 'blk', sizeBytes: 2 * 2 ** 30 }] },
    });
    expect(planOf(current(undefined, '2GiB'), current())).toEqual({
      problems: [
        {
          path: 'devices[1].block.size',
          message:
            'removing the size of device "blk" needs a restart (set a larger size to grow it while serving)',
        },
      ],
    });
    expect(planOf(current(undefined, '2GiB'), current(undefined, '1GiB'))).toMatchObject({
      problems: [{ path: 'devices[1].block.size' }],
    });
  });
});

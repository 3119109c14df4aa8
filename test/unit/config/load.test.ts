import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  ConfigError,
  ConfigErrorCode,
  loadConfig,
  parseConfig,
  type ConfigEnv,
  type ConfigIssue,
} from '../../../src/supervisor/config/load.ts';
import { iscsiNameProblem, parsePortal } from '../../../src/supervisor/config/schema.ts';

const ENV: ConfigEnv = { hostname: 'host-a', cores: 4, cwd: '/srv/spindle' };

const FULL = `
clusterId: demo
nodeId: node-1
stateDir: /var/lib/spindle
workers: { session: 2, lun: 3 }
logging: { level: debug }
iscsi:
  maxRecvDataSegmentLength: 65536
  maxBurstLength: 1MiB
  firstBurstLength: 65536
  maxOutstandingR2T: 4
  maxTransferLength: 4MiB
  maxConnectionsPerPortal: 16
  loginTimeoutSec: 30
devices:
  - name: ram0
    ram: { size: 1GiB }
    blockSize: 512
    readOnly: false
    writeCache: writeback
    serial: "ABC123"
    vendor: SPINDLE
    product: "VDISK"
  - name: disk1
    file: { path: /var/lib/spindle/disk1.img, size: 10GiB }
    blockSize: 4096
    readOnly: true
    writeCache: writethrough
targets:
  - iqn: iqn.2026-11.io.spindle:demo
    alias: demo
    portals: ["127.0.0.1:3260", "[::1]:3260"]
    luns: { 0: ram0, 1: disk1 }
    auth: { chap: { user: u, secret: "0123456789ab" } }
  - iqn: iqn.2026-11.io.spindle:second
    portals: ["127.0.0.1:3260"]
    luns: { 7: ram0 }
discovery: { auth: { chap: { user: d, secret: "discovery-secret" } } }
aluaStates: { "[::1]:3260": standby }
`;

/** A small valid config as data, for tests that change one thing. */
function base(): Record<string, unknown> {
  return {
    devices: [{ name: 'ram0', ram: { size: '256MiB' } }],
    targets: [{ iqn: 'iqn.2026-11.io.spindle:demo', portals: ['127.0.0.1:3260'], luns: { 0: 'ram0' } }],
  };
}

type Json = Record<string, unknown>;
function mutate(fn: (c: Json & { devices: Json[]; targets: Json[] }) => void): string {
  const c = base() as Json & { devices: Json[]; targets: Json[] };
  fn(c);
  return stringify(c);
}

function issuesOf(yamlText: string): ConfigIssue[] {
  try {
    parseConfig(yamlText, 'test.yaml', ENV);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).issues];
  }
  throw new Error('expected the configuration to be rejected');
}

/** Asserts exactly one issue, at `path`, whose message contains `message`. */
function expectOnly(yamlText: string, path: string, message: string): void {
  const issues = issuesOf(yamlText).map(({ path, message }) => ({ path, message }));
  expect(issues).toHaveLength(1);
  expect(issues[0]?.path).toBe(path);
  expect(issues[0]?.message).toContain(message);
}

/** Asserts an issue at `path` whose message contains `message` (others may accompany it). */
function expectIssue(yamlText: string, path: string, message: string): void {
  const issues = issuesOf(yamlText).map(({ path, message }) => ({ path, message }));
  expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
}

describe('valid configurations', () => {
  it('parses a full configuration', () => {
    const c = parseConfig(FULL, 'full.yaml', ENV);
    expect(c).toEqual({
      clusterId: 'demo',
      nodeId: 'node-1',
      stateDir: '/var/lib/spindle',
      aluaStates: [{ portal: { host: '::1', port: 3260 }, state: 'standby' }],
      workers: { session: 2, lun: 3 },
      logging: { level: 'debug' },
      iscsi: {
        maxRecvDataSegmentLength: 65536,
        maxBurstLength: 1048576,
        firstBurstLength: 65536,
        maxOutstandingR2T: 4,
        maxTransferLength: 4194304,
        maxConnectionsPerPortal: 16,
        loginTimeoutSec: 30,
        nopIntervalSec: 30,
        nopTimeoutSec: 15,
        maxSessionsPerTarget: 256,
        authBackoffMaxSec: 30,
        maxPendingWriteBytes: 64 * 1024 * 1024,
        dataOutTimeoutSec: 30,
        maxConnectionsPerAddress: 64,
        immediateData: true,
        initialR2T: false,
        dataPDUInOrder: false,
        dataSequenceInOrder: false,
      },
      devices: [
        {
          name: 'ram0',
          backing: { type: 'ram', size: 2 ** 30 },
          blockSize: 512,
          readOnly: false,
          writeCache: 'writeback',
          serial: 'ABC123',
          vendor: 'SPINDLE',
          product: 'VDISK',
        },
        {
          name: 'disk1',
          backing: { type: 'file', path: '/var/lib/spindle/disk1.img', size: 10 * 2 ** 30 },
          blockSize: 4096,
          readOnly: true,
          writeCache: 'writethrough',
          vendor: 'SPINDLE',
          product: 'VDISK',
        },
      ],
      targets: [
        {
          iqn: 'iqn.2026-11.io.spindle:demo',
          alias: 'demo',
          portals: [
            { host: '127.0.0.1', port: 3260 },
            { host: '::1', port: 3260 },
          ],
          luns: { 0: 'ram0', 1: 'disk1' },
          auth: { chap: { user: 'u', secret: '0123456789ab' } },
        },
        {
          iqn: 'iqn.2026-11.io.spindle:second',
          portals: [{ host: '127.0.0.1', port: 3260 }],
          luns: { 7: 'ram0' },
        },
      ],
      discovery: { auth: { chap: { user: 'd', secret: 'discovery-secret' } } },
    });
  });

  it('applies defaults', () => {
    const c = parseConfig(stringify(base()), 'min.yaml', ENV);
    expect(c.clusterId).toBe('spindle');
    expect(c.nodeId).toBe('host-a');
    expect(c.stateDir).toBe('/srv/spindle/.spindle');
    expect(c.workers).toEqual({ session: 4, lun: 4 });
    expect(c.logging).toEqual({ level: 'info' });
    expect(c.discovery).toEqual({});
    expect(c.iscsi).toEqual({
      maxRecvDataSegmentLength: 262144,
      maxBurstLength: 1048576,
      firstBurstLength: 262144,
      maxOutstandingR2T: 1,
      maxTransferLength: 33554432,
      maxConnectionsPerPortal: 256,
      loginTimeoutSec: 15,
      nopIntervalSec: 30,
      nopTimeoutSec: 15,
      maxSessionsPerTarget: 256,
      authBackoffMaxSec: 30,
      maxPendingWriteBytes: 64 * 1024 * 1024,
      dataOutTimeoutSec: 30,
      maxConnectionsPerAddress: 64,
      immediateData: true,
      initialR2T: false,
      dataPDUInOrder: false,
      dataSequenceInOrder: false,
    });
    expect(c.devices[0]).toEqual({
      name: 'ram0',
      backing: { type: 'ram', size: 256 * 2 ** 20 },
      blockSize: 512,
      readOnly: false,
      writeCache: 'writeback',
      vendor: 'SPINDLE',
      product: 'VDISK',
    });
    expect(c.targets[0]).not.toHaveProperty('auth');
    expect(c.targets[0]).not.toHaveProperty('alias');
  });

  it('uses the real host name and core count when no env is given', () => {
    const c = parseConfig(stringify(base()), 'min.yaml');
    expect(c.nodeId).toBe(os.hostname());
    const cores = Math.min(64, Math.max(1, os.availableParallelism()));
    expect(c.workers).toEqual({ session: cores, lun: cores });
    expect(c.stateDir).toBe(path.resolve('.spindle'));
  });

  it('clamps the default worker count to 1..64', () => {
    expect(parseConfig(stringify(base()), 'x', { ...ENV, cores: 200 }).workers).toEqual({
      session: 64,
      lun: 64,
    });
    expect(parseConfig(stringify(base()), 'x', { ...ENV, cores: 0 }).workers).toEqual({ session: 1, lun: 1 });
  });

  it('resolves relative paths against the working directory', () => {
    const c = parseConfig(
      mutate((c) => {
        c['stateDir'] = 'state';
        c.devices[0] = { name: 'ram0', file: { path: 'disks/a.img', size: '1MiB' } };
      }),
      'x',
      ENV,
    );
    expect(c.stateDir).toBe('/srv/spindle/state');
    expect(c.devices[0]?.backing).toEqual({ type: 'file', path: '/srv/spindle/disks/a.img', size: 2 ** 20 });
  });

  it('shrinks the default firstBurstLength to a smaller maxBurstLength', () => {
    const c = parseConfig(
      mutate((c) => (c['iscsi'] = { maxBurstLength: 65536 })),
      'x',
      ENV,
    );
    expect(c.iscsi.maxBurstLength).toBe(65536);
    expect(c.iscsi.firstBurstLength).toBe(65536);
  });

  it('treats empty optional sections (YAML null) as absent', () => {
    const text = stringify(base()) + 'logging:\nworkers:\ndiscovery:\niscsi:\n';
    const c = parseConfig(text, 'x', ENV);
    expect(c.logging.level).toBe('info');
    expect(c.discovery).toEqual({});
  });

  it('lets several targets export the same device and share a portal', () => {
    const c = parseConfig(FULL, 'x', ENV);
    expect(c.targets[0]?.luns[0]).toBe('ram0');
    expect(c.targets[1]?.luns[7]).toBe('ram0');
  });

  it('accepts auth without chap', () => {
    const c = parseConfig(
      mutate((c) => (c.targets[0]!['auth'] = {})),
      'x',
      ENV,
    );
    expect(c.targets[0]?.auth).toEqual({});
  });

  it('returns a deeply frozen object', () => {
    const c = parseConfig(FULL, 'x', ENV);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.targets[0]?.portals[0])).toBe(true);
    expect(Object.isFrozen(c.devices[1]?.backing)).toBe(true);
  });

  it('survives structured cloning unchanged (it crosses MessagePorts)', () => {
    const c = parseConfig(FULL, 'x', ENV);
    expect(structuredClone(c)).toEqual(c);
  });

  it('parses the shipped demo config', async () => {
    const c = await loadConfig(path.resolve(import.meta.dirname, '../../../examples/demo.yaml'));
    expect(c.devices).toEqual([
      expect.objectContaining({ name: 'ram0', backing: { type: 'ram', size: 256 * 2 ** 20 } }),
    ]);
    expect(c.targets).toEqual([
      expect.objectContaining({
        iqn: 'iqn.2026-11.io.spindle:demo',
        portals: [{ host: '127.0.0.1', port: 3260 }],
        luns: { 0: 'ram0' },
      }),
    ]);
  });
});

describe('top level', () => {
  it('rejects an empty document', () => {
    expect(issuesOf('')).toEqual([{ path: '', message: expect.stringContaining('empty') }]);
  });

  it('rejects a document that is not a mapping', () => {
    expectOnly('- a\n- b\n', '', 'must be a mapping');
  });

  it('rejects unknown keys, suggesting the likely one', () => {
    expectOnly(
      mutate((c) => (c['wrokers'] = { session: 1 })),
      'wrokers',
      'unknown key "wrokers" (did you mean "workers"?)',
    );
    expectOnly(
      mutate((c) => (c['bogus'] = 1)),
      'bogus',
      'unknown key "bogus" (allowed: clusterId,',
    );
  });

  it.each([
    ['clusterId', 'has space', 'clusterId', 'must be 1-64 characters'],
    ['clusterId', 'x'.repeat(65), 'clusterId', 'must be 1-64 characters'],
    ['clusterId', 5, 'clusterId', 'must be a string'],
    ['nodeId', 'a/b', 'nodeId', 'must be 1-253 characters'],
    ['stateDir', '', 'stateDir', 'non-empty'],
    ['stateDir', 12, 'stateDir', 'must be a string'],
    [
      'logging',
      { level: 'verbose' },
      'logging.level',
      'must be one of trace, debug, info, warn, error, fatal',
    ],
    ['logging', { lvl: 'info' }, 'logging.lvl', 'unknown key "lvl" (allowed: level)'],
    ['logging', 'info', 'logging', 'must be a mapping'],
    ['workers', { session: 0 }, 'workers.session', 'must be an integer 1-64'],
    ['workers', { lun: 65 }, 'workers.lun', 'must be an integer 1-64'],
    ['workers', { lun: 1.5 }, 'workers.lun', 'must be an integer 1-64'],
    ['workers', { io: 2 }, 'workers.io', 'unknown key'],
    ['devices', { name: 'x' }, 'devices', 'must be a list'],
    ['targets', 'x', 'targets', 'must be a list'],
    [
      'discovery',
      { auth: { chap: { user: 'u', secret: 'short' } } },
      'discovery.auth.chap.secret',
      'at least 12',
    ],
    ['discovery', { chap: {} }, 'discovery.chap', 'unknown key'],
  ])('%s = %j -> %s', (key, value, path, message) => {
    // Some of these also leave the target's LUN pointing at no device: check only this one.
    expectIssue(
      mutate((c) => (c[key] = value)),
      path,
      message,
    );
  });

  it('reports a host name that is not a valid node id', () => {
    expect(() => parseConfig(stringify(base()), 'x', { ...ENV, hostname: 'bad host' })).toThrow(
      'nodeId: the host name "bad host" is not a valid node id; set nodeId',
    );
  });
});

describe('iscsi tuning (RFC 7143 ranges)', () => {
  it.each([
    [{ maxRecvDataSegmentLength: 511 }, 'iscsi.maxRecvDataSegmentLength', 'must be 512-16777215 bytes'],
    [{ maxRecvDataSegmentLength: 16777216 }, 'iscsi.maxRecvDataSegmentLength', 'must be 512-16777215 bytes'],
    [{ maxRecvDataSegmentLength: '16MiB' }, 'iscsi.maxRecvDataSegmentLength', 'must be 512-16777215 bytes'],
    [{ maxRecvDataSegmentLength: 'lots' }, 'iscsi.maxRecvDataSegmentLength', 'invalid size'],
    [{ maxBurstLength: 100 }, 'iscsi.maxBurstLength', 'must be 512-16777215 bytes'],
    [{ firstBurstLength: 256 }, 'iscsi.firstBurstLength', 'must be 512-16777215 bytes'],
    [
      { maxBurstLength: 65536, firstBurstLength: 131072 },
      'iscsi.firstBurstLength',
      'must not exceed maxBurstLength (65536)',
    ],
    [{ maxOutstandingR2T: 0 }, 'iscsi.maxOutstandingR2T', 'must be an integer 1-65535'],
    [{ maxTransferLength: 6000 }, 'iscsi.maxTransferLength', 'must be a multiple of 4096'],
    [{ maxTransferLength: '2GiB' }, 'iscsi.maxTransferLength', 'must be 4096-1073741824 bytes'],
    [{ maxConnectionsPerPortal: 0 }, 'iscsi.maxConnectionsPerPortal', 'must be an integer 1-65535'],
    [{ loginTimeoutSec: 0 }, 'iscsi.loginTimeoutSec', 'must be an integer 1-3600'],
    [{ loginTimeoutSec: '15' }, 'iscsi.loginTimeoutSec', 'must be an integer 1-3600'],
    [{ maxBurst: 1 }, 'iscsi.maxBurst', 'did you mean "maxBurstLength"'],
  ])('%j', (iscsi, path, message) => {
    expectOnly(
      mutate((c) => (c['iscsi'] = iscsi)),
      path,
      message,
    );
  });

  it('accepts the RFC boundaries', () => {
    const c = parseConfig(
      mutate(
        (c) =>
          (c['iscsi'] = {
            maxRecvDataSegmentLength: 512,
            maxBurstLength: 16777215,
            firstBurstLength: 16777215,
          }),
      ),
      'x',
      ENV,
    );
    expect(c.iscsi.maxRecvDataSegmentLength).toBe(512);
    expect(c.iscsi.firstBurstLength).toBe(16777215);
  });
});

describe('devices', () => {
  const dev = (d: Json): string =>
    mutate((c) => {
      c.devices[0] = { name: 'ram0', ...d };
    });

  it.each([
    [{}, 'devices[0]', 'exactly one of ram, file, block, null or cdrom is required'],
    [
      { ram: { size: '1MiB' }, file: { path: '/x', size: '1MiB' } },
      'devices[0]',
      'ram and file are mutually exclusive',
    ],
    [{ ram: {} }, 'devices[0].ram.size', 'size is required'],
    [{ ram: 5 }, 'devices[0].ram', 'must be a mapping'],
    [{ ram: { size: '1MiB', sise: 1 } }, 'devices[0].ram.sise', 'did you mean "size"'],
    [{ ram: { size: '1GB' } }, 'devices[0].ram.size', 'binary units only'],
    [
      { ram: { size: 1000 } },
      'devices[0].ram.size',
      'size 1000 bytes is not a multiple of the block size (512)',
    ],
    [
      { ram: { size: 1536 }, blockSize: 4096 },
      'devices[0].ram.size',
      'not a multiple of the block size (4096)',
    ],
    [{ file: { path: '/x' } }, 'devices[0].file.size', 'size is required: the file is created or extended'],
    [{ file: { size: '1MiB' } }, 'devices[0].file.path', 'path of the backing file is required'],
    [{ file: { path: '', size: '1MiB' } }, 'devices[0].file.path', 'non-empty'],
    [{ file: { path: 7, size: '1MiB' } }, 'devices[0].file.path', 'must be a string'],
    [{ file: { path: '/x', size: 0 } }, 'devices[0].file.size', 'positive whole number'],
    [{ ram: { size: '1MiB' }, blockSize: 1024 }, 'devices[0].blockSize', 'must be one of 512, 2048, 4096'],
    [{ ram: { size: '1MiB' }, blockSize: '512' }, 'devices[0].blockSize', 'must be one of 512, 2048, 4096'],
    [{ ram: { size: '1MiB' }, readOnly: 'yes' }, 'devices[0].readOnly', 'must be true or false'],
    [
      { ram: { size: '1MiB' }, writeCache: 'none' },
      'devices[0].writeCache',
      'must be one of writethrough, writeback',
    ],
    [{ ram: { size: '1MiB' }, serial: 'x'.repeat(33) }, 'devices[0].serial', 'must be 1-32 printable ASCII'],
    [{ ram: { size: '1MiB' }, serial: 'sérial' }, 'devices[0].serial', 'printable ASCII'],
    [{ ram: { size: '1MiB' }, serial: '' }, 'devices[0].serial', 'printable ASCII'],
    [{ ram: { size: '1MiB' }, vendor: 'TOOLONGVN' }, 'devices[0].vendor', 'must be 1-8 printable ASCII'],
    [{ ram: { size: '1MiB' }, vendor: 'TAB\tX' }, 'devices[0].vendor', 'printable ASCII'],
    [
      { ram: { size: '1MiB' }, product: 'P'.repeat(17) },
      'devices[0].product',
      'must be 1-16 printable ASCII',
    ],
    [{ ram: { size: '1MiB' }, readonly: true }, 'devices[0].readonly', 'did you mean "readOnly"'],
  ])('%j', (d, path, message) => {
    expectOnly(dev(d), path, message);
  });

  it.each([
    ['bad name', 'must be 1-64 characters'],
    ['x'.repeat(65), 'must be 1-64 characters'],
    ['', 'must be 1-64 characters'],
    [null, 'device name is required'],
    [12, 'must be a string'],
  ])('rejects the name %j', (name, message) => {
    expectIssue(dev({ ram: { size: '1MiB' }, name }), 'devices[0].name', message);
  });

  it('accepts the maximum field lengths', () => {
    const c = parseConfig(
      dev({ ram: { size: '1MiB' }, serial: 'S'.repeat(32), vendor: 'V'.repeat(8), product: 'P'.repeat(16) }),
      'x',
      ENV,
    );
    expect(c.devices[0]?.serial).toHaveLength(32);
  });

  it('rejects duplicate names, naming the first', () => {
    const text = mutate((c) => c.devices.push({ name: 'ram0', ram: { size: '1MiB' } }));
    expectOnly(text, 'devices[1].name', 'duplicate device name "ram0" (also devices[0])');
  });

  it('rejects a device that is not a mapping', () => {
    expectOnly(
      mutate((c) => c.devices.push('ram1' as unknown as Json)),
      'devices[1]',
      'must be a mapping',
    );
  });
});

describe('targets', () => {
  const tgt = (t: Json): string =>
    mutate((c) => {
      c.targets[0] = { ...c.targets[0], ...t };
    });

  it.each([
    [{ iqn: null }, 'targets[0].iqn', 'iqn is required'],
    [{ iqn: 'IQN.2026-11.io.spindle:demo' }, 'targets[0].iqn', 'must be lowercase'],
    [{ iqn: 'iqn.2026-11.io.Spindle:demo' }, 'targets[0].iqn', 'must be lowercase'],
    [{ iqn: 'iqn.2026-13.io.spindle' }, 'targets[0].iqn', 'month must be 01-12'],
    [{ iqn: 'iqn.26-11.io.spindle' }, 'targets[0].iqn', 'expected iqn.yyyy-mm.reversed.domain'],
    [{ iqn: 'iqn.2026-11.io.spindle:' }, 'targets[0].iqn', 'expected iqn.yyyy-mm'],
    [{ iqn: 'iqn.2026-11.io.spindle:a b' }, 'targets[0].iqn', 'expected iqn.yyyy-mm'],
    [{ iqn: 'iqn.2026-11.' + 'a'.repeat(220) }, 'targets[0].iqn', 'at most 223'],
    [{ iqn: 'eui.1234' }, 'targets[0].iqn', '16 hex digits'],
    [{ iqn: 'naa.123456789012345678' }, 'targets[0].iqn', '16 or 32 hex digits'],
    [{ iqn: 'target1' }, 'targets[0].iqn', 'must start with iqn., eui. or naa.'],
    [{ alias: '' }, 'targets[0].alias', '1-255 bytes'],
    [{ alias: 'a\nb' }, 'targets[0].alias', 'without control characters'],
    [{ portals: null }, 'targets[0].portals', 'at least one portal is required'],
    [{ portals: [] }, 'targets[0].portals', 'at least one portal is required'],
    [{ portals: '127.0.0.1:3260' }, 'targets[0].portals', 'must be a list'],
    [
      { portals: ['127.0.0.1:3260', '127.0.0.1:0'] },
      'targets[0].portals[1]',
      'port must be an integer 1-65535',
    ],
    [
      { portals: ['127.0.0.1:3260', '127.0.0.1:65536'] },
      'targets[0].portals[1]',
      'port must be an integer 1-65535',
    ],
    [
      { portals: ['127.0.0.1:3260', '127.0.0.1:x'] },
      'targets[0].portals[1]',
      'port must be an integer 1-65535',
    ],
    [{ portals: ['127.0.0.1:3260', 3260] }, 'targets[0].portals[1]', 'must be a string'],
    [{ portals: ['::1:3260'] }, 'targets[0].portals[0]', 'must be in brackets'],
    [{ portals: ['::1'] }, 'targets[0].portals[0]', 'must be in brackets'],
    [{ portals: ['[127.0.0.1]:3260'] }, 'targets[0].portals[0]', 'is not an IPv6 address'],
    [{ portals: ['bad_host:3260'] }, 'targets[0].portals[0]', 'is not an IP address or host name'],
    [{ portals: [':3260'] }, 'targets[0].portals[0]', 'portal must be "host:port"'],
    [
      { portals: ['127.0.0.1:3260', '127.0.0.1:3260'] },
      'targets[0].portals[1]',
      'duplicate portal 127.0.0.1:3260 (same as portals[0])',
    ],
    [{ portals: ['127.0.0.1', '127.0.0.1:3260'] }, 'targets[0].portals[1]', 'duplicate portal'],
    [{ portals: ['[::1]:3260', '[0:0:0:0:0:0:0:1]:3260'] }, 'targets[0].portals[1]', 'duplicate portal'],
    [{ luns: null }, 'targets[0].luns', 'at least one LUN is required'],
    [{ luns: {} }, 'targets[0].luns', 'at least one LUN is required'],
    [{ luns: ['ram0'] }, 'targets[0].luns', 'must be a mapping of LUN number to device name'],
    [{ luns: { 16384: 'ram0' } }, 'targets[0].luns.16384', 'LUN number must be an integer 0-16383'],
    [{ luns: { x: 'ram0' } }, 'targets[0].luns.x', 'LUN number must be an integer 0-16383'],
    [{ luns: { '-1': 'ram0' } }, 'targets[0].luns.-1', 'LUN number must be an integer 0-16383'],
    [{ luns: { 0: 'ram9' } }, 'targets[0].luns.0', 'unknown device "ram9" (devices: ram0)'],
    [{ luns: { 0: 5 } }, 'targets[0].luns.0', 'must be the name of a device'],
    [
      { luns: { 0: 'ram0', 3: 'ram0' } },
      'targets[0].luns.3',
      'device "ram0" is already LUN 0 of this target',
    ],
    [
      { auth: { chap: { user: 'u', secret: '01234567890' } } },
      'targets[0].auth.chap.secret',
      'CHAP secret is 11 bytes; RFC 7143 section 12.1.3 requires at least 12',
    ],
    [
      { auth: { chap: { user: 'u', secret: 'x'.repeat(256) } } },
      'targets[0].auth.chap.secret',
      'at most 255',
    ],
    [
      { auth: { chap: { user: 'u', secret: 123456789012345 } } },
      'targets[0].auth.chap.secret',
      'must be a string (quote it)',
    ],
    [{ auth: { chap: { user: 'u' } } }, 'targets[0].auth.chap.secret', 'CHAP secret is required'],
    [
      { auth: { chap: { secret: '0123456789ab' } } },
      'targets[0].auth.chap.user',
      'CHAP user name is required',
    ],
    [{ auth: { chap: { user: '', secret: '0123456789ab' } } }, 'targets[0].auth.chap.user', '1-255 bytes'],
    [
      { auth: { chap: { user: 'u', secret: '0123456789ab', mutual: true } } },
      'targets[0].auth.chap.mutual',
      'unknown key',
    ],
    [{ auth: { chapp: {} } }, 'targets[0].auth.chapp', 'did you mean "chap"'],
    [{ lun: { 0: 'ram0' } }, 'targets[0].lun', 'did you mean "luns"'],
  ])('%j', (t, path, message) => {
    expectOnly(tgt(t), path, message);
  });

  it.each([
    ['iqn.2026-11.io.spindle:demo'],
    ['iqn.2026-11.io.spindle'],
    ['iqn.1992-01.com.example:storage:diskarrays-sn-a8675309'],
    ['iqn.2001-04.com.example:storage.tape1.sys1.xyz'],
    ['eui.02004567A425678D'],
    ['naa.52004567BA64678D'],
    ['naa.52004567BA64678D52004567BA64678D'],
  ])('accepts the iSCSI name %s', (name) => {
    expect(iscsiNameProblem(name)).toBeUndefined();
    expect(parseConfig(tgt({ iqn: name }), 'x', ENV).targets[0]?.iqn).toBe(name);
  });

  it('never echoes a CHAP secret in an error', () => {
    const issues = issuesOf(tgt({ auth: { chap: { user: 'u', secret: 'hunter2' } } }));
    expect(JSON.stringify(issues)).not.toContain('hunter2');
  });

  it('rejects duplicate target names', () => {
    const text = mutate((c) => c.targets.push({ ...c.targets[0] }));
    expectOnly(text, 'targets[1].iqn', 'duplicate target name (also targets[0])');
  });

  it('does not report "unknown device" for a device that exists but has its own errors', () => {
    const text = mutate((c) => (c.devices[0] = { name: 'ram0', ram: { size: 1000 } }));
    expectOnly(text, 'devices[0].ram.size', 'not a multiple');
  });
});

describe('parsePortal', () => {
  it.each([
    ['127.0.0.1:3260', { host: '127.0.0.1', port: 3260 }],
    ['0.0.0.0:860', { host: '0.0.0.0', port: 860 }],
    ['127.0.0.1', { host: '127.0.0.1', port: 3260 }],
    ['[::1]:3261', { host: '::1', port: 3261 }],
    ['[::]', { host: '::', port: 3260 }],
    ['[fe80::1]', { host: 'fe80::1', port: 3260 }],
    ['LocalHost:3260', { host: 'localhost', port: 3260 }],
    ['storage.example.com:3260', { host: 'storage.example.com', port: 3260 }],
  ])('%s', (text, portal) => {
    expect(parsePortal(text)).toEqual(portal);
  });
});

describe('error reporting', () => {
  it('collects every problem, with paths, lines and a one-per-line message', () => {
    const text = [
      'clusterId: "bad id"', // 1
      'wrokers: { session: 2 }', // 2
      'devices:', // 3
      '  - name: ram0', // 4
      '    ram: { size: 1000 }', // 5
      'targets:', // 6
      '  - iqn: iqn.2026-11.io.spindle:demo', // 7
      '    portals: ["127.0.0.1:3260", "127.0.0.1:99999"]', // 8
      '    luns: { 0: ram1 }', // 9
    ].join('\n');
    let error: unknown;
    try {
      parseConfig(text, 'bad.yaml', ENV);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.name).toBe('ConfigError');
    expect(e.code).toBe(ConfigErrorCode.invalid);
    expect(e.code).toBe('ERR_SPINDLE_CONFIG_INVALID');
    expect(e.source).toBe('bad.yaml');
    expect(e.issues).toEqual([
      { path: 'wrokers', message: 'unknown key "wrokers" (did you mean "workers"?)', line: 2 },
      { path: 'clusterId', message: expect.stringContaining('must be 1-64 characters'), line: 1 },
      { path: 'devices[0].ram.size', message: expect.stringContaining('not a multiple'), line: 5 },
      { path: 'targets[0].portals[1]', message: 'port must be an integer 1-65535', line: 8 },
      { path: 'targets[0].luns.0', message: 'unknown device "ram1" (devices: ram0)', line: 9 },
    ]);
    const lines = e.message.split('\n');
    expect(lines[0]).toBe('invalid configuration in bad.yaml (5 problems):');
    expect(lines).toHaveLength(6);
    expect(lines[4]).toBe('  targets[0].portals[1]: port must be an integer 1-65535 (line 8)');
  });

  it('reports the parent line for a missing required key', () => {
    const text = 'devices:\n  - name: d\n    file:\n      path: /x\n';
    expect(issuesOf(text)).toEqual([
      { path: 'devices[0].file.size', message: expect.stringContaining('size is required'), line: 3 },
    ]);
  });

  it('reports YAML syntax errors with their line', () => {
    let error: unknown;
    try {
      parseConfig('devices: [\n  - a\n', 'broken.yaml', ENV);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe(ConfigErrorCode.syntax);
    expect((error as ConfigError).issues[0]?.message).toMatch(/^YAML: /);
  });

  it('rejects duplicate keys instead of silently keeping the last', () => {
    const issues = issuesOf('clusterId: a\nclusterId: b\n');
    expect(issues).toEqual([{ path: '', message: 'YAML: Map keys must be unique', line: 2 }]);
  });

  it('rejects several documents in one file', () => {
    expect(issuesOf(stringify(base()) + '---\n' + stringify(base()))[0]?.message).toMatch(
      /YAML: .*document/i,
    );
  });

  it('rejects alias bombs', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++) {
      const p = String.fromCharCode(97 + i);
      const n = String.fromCharCode(98 + i);
      bomb.push(`${n}: &${n} [*${p}, *${p}, *${p}, *${p}, *${p}, *${p}, *${p}, *${p}, *${p}, *${p}]`);
    }
    const issues = issuesOf(bomb.join('\n'));
    expect(issues[0]?.message).toMatch(/^YAML: /);
  });
});

describe('loadConfig', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'spindle-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a file', async () => {
    const file = path.join(dir, 'ok.yaml');
    await writeFile(file, FULL);
    const c = await loadConfig(file);
    expect(c.clusterId).toBe('demo');
  });

  it('names the file in errors', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, 'clusterId: [1]\n');
    await expect(loadConfig(file)).rejects.toThrow(`invalid configuration in ${file} (1 problem):`);
  });

  it('reports a missing file as unreadable', async () => {
    const file = path.join(dir, 'missing.yaml');
    await expect(loadConfig(file)).rejects.toMatchObject({
      name: 'ConfigError',
      code: 'ERR_SPINDLE_CONFIG_UNREADABLE',
      issues: [{ path: '', message: expect.stringContaining('ENOENT') }],
    });
  });
});

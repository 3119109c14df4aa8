/**
 * Properties of the configuration schema as a whole: the reload policy derived from its rows,
 * hints for keys written at the wrong level, every problem reported at once (rules included),
 * and the check-config summary built from a validated file.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { describeConfig } from '../../../src/supervisor/cli.ts';
import { ConfigError, loadConfig, parseConfig, type ConfigEnv } from '../../../src/supervisor/config/load.ts';
import { RELOAD_POLICY } from '../../../src/supervisor/config/schema.ts';

const ENV: ConfigEnv = { hostname: 'host-a', cores: 4, cwd: '/srv/spindle' };

function issues(text: string): string[] {
  try {
    parseConfig(text, 'test.yaml', ENV);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map(
      (i) => `${i.path}: ${i.message}${i.line === undefined ? '' : ` @${i.line}`}`,
    );
  }
  throw new Error('expected the configuration to be rejected');
}

function base(): Record<string, unknown> & {
  devices: Record<string, unknown>[];
  targets: Record<string, unknown>[];
} {
  return {
    devices: [{ name: 'ram0', ram: { size: '1MiB' } }],
    targets: [{ iqn: 'iqn.2026-11.io.spindle:t', portals: ['127.0.0.1:3260'], luns: { 0: 'ram0' } }],
  };
}

describe('reload policy derived from the rows', () => {
  it('names the settings fixed for the run, as reload.ts always had them', () => {
    expect([...RELOAD_POLICY.fixed].sort()).toEqual([
      'api',
      'cluster',
      'clusterId',
      'iscsi',
      'logging',
      'nodeId',
      'stateDir',
      'workers',
    ]);
    expect([...RELOAD_POLICY.device.fixed].sort()).toEqual([
      'blockSize',
      'direct',
      'physicalBlockSize',
      'product',
      'queueDepth',
      'readOnly',
      'removable',
      'serial',
      'thin',
      'vendor',
      'writeCache',
    ]);
    expect(RELOAD_POLICY.device.backing).toEqual({
      ram: { size: 'grow' },
      file: { path: 'restart', size: 'grow' },
      block: { path: 'restart', size: 'grow', prefix: 'restart' },
      null: { size: 'grow' },
      // Another image is another disc: a medium change, applied live.
      cdrom: { path: 'live' },
    });
    expect(RELOAD_POLICY.target.fixed).toEqual(['portals']);
  });
});

describe('unknown keys', () => {
  it('points a key written one level too high to where it belongs', () => {
    const top = base();
    top['maxBurstLength'] = 65536;
    expect(issues(stringify(top))).toEqual([
      'maxBurstLength: unknown key "maxBurstLength" (did you mean "iscsi.maxBurstLength"?) @11',
    ]);
    const dev = base();
    dev.devices[0] = { name: 'ram0', ram: { size: '1MiB' }, size: '2MiB' };
    expect(issues(stringify(dev))).toContain(
      'devices[0].size: unknown key "size" (did you mean "ram.size" or "file.size" or "block.size" or "null.size"?) @5',
    );
    const tgt = base();
    tgt.targets[0]!['chap'] = { user: 'u', secret: '0123456789ab' };
    expect(issues(stringify(tgt))[0]).toMatch(
      /^targets\[0\]\.chap: unknown key "chap" \(did you mean "auth\.chap"\?\)/,
    );
  });

  it('suggests a key with two letters swapped', () => {
    const d = base();
    d.devices[0] = { name: 'ram0', ram: { size: '1MiB' }, tihn: true };
    expect(issues(stringify(d))).toEqual(['devices[0].tihn: unknown key "tihn" (did you mean "thin"?) @5']);
  });
});

describe('every problem at once', () => {
  it('reports cross-field rules of several sections together with plain value errors, each with its line', () => {
    const text = [
      'iscsi: { maxBurstLength: 65536, firstBurstLength: 131072, loginTimeoutSec: 0 }', // 1
      'devices:', // 2
      '  - { name: a, ram: { size: 1000 }, physicalBlockSize: 512, blockSize: 4096 }', // 3
      '  - { name: a, file: { path: /x, size: 1MiB } }', // 4
      'targets:', // 5
      '  - iqn: iqn.2026-11.io.spindle:t', // 6
      '    portals: ["127.0.0.1:3260"]', // 7
      '    luns: { 0: a, 1: b }', // 8
      '    auth: { chap: { user: u, secret: same-secret-123 }, mutualChap: { user: t, secret: same-secret-123 } }', // 9
      'aluaStates: { "127.0.0.1:3261": standby }', // 10
    ].join('\n');
    expect(issues(text)).toEqual([
      'iscsi.loginTimeoutSec: must be an integer 1-3600, got number 0 @1',
      'iscsi.firstBurstLength: must not exceed maxBurstLength (65536) (RFC 7143 section 13.14), got 131072 @1',
      'devices[0].ram.size: size 1000 bytes is not a multiple of the block size (4096) @3',
      'devices[0].physicalBlockSize: must be at least the logical block size (4096), got 512 @3',
      'devices[1].name: duplicate device name "a" (also devices[0]) @4',
      'targets[0].luns.1: unknown device "b" (devices: a) @8',
      'aluaStates["127.0.0.1:3261"]: no target listens on 127.0.0.1:3261: an ALUA state needs one of the targets\' portals @10',
      'targets[0].auth.mutualChap.secret: must differ from the secret at targets[0].auth.chap.secret: RFC 7143 section 9.2.1 forbids using one CHAP secret in both directions (initiator and target authentication) @9',
    ]);
  });

  it('knows the portals of a target that has other mistakes (no misleading ALUA issue)', () => {
    const d = base();
    d.targets[0]!['luns'] = { 0: 'nope' };
    d['aluaStates'] = { '127.0.0.1:3260': 'standby' };
    expect(issues(stringify(d))).toEqual(['targets[0].luns.0: unknown device "nope" (devices: ram0) @10']);
  });
});

describe('check-config summary', () => {
  it('describes the shipped demo configuration', async () => {
    const file = path.resolve(import.meta.dirname, '../../../examples/demo.yaml');
    const text = describeConfig(await loadConfig(file), 'demo.yaml');
    expect(text.split('\n').slice(0, 1)).toEqual(['demo.yaml: configuration is valid']);
    expect(text).toContain(
      'iscsi: MaxRecvDataSegmentLength 262144, MaxBurstLength 1048576, FirstBurstLength 262144',
    );
    expect(text).toContain('    ram0: ram, 256MiB, 512-byte blocks, writeback, read-write');
    expect(text).toContain('    iqn.2026-11.io.spindle:demo (demo) on 127.0.0.1:3260, no auth');
    expect(text).toContain('      LUN 0: ram0');
  });
});

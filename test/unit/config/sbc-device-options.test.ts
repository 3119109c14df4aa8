/**
 * Device options of the SBC-4 LU setups: thin, removable, physicalBlockSize.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, parseConfig, type ConfigEnv } from '../../../src/supervisor/config/load.ts';

const ENV: ConfigEnv = { hostname: 'host-a', cores: 4, cwd: '/srv/spindle' };

function config(device: Record<string, unknown>): string {
  return stringify({
    devices: [{ name: 'd0', ram: { size: '1MiB' }, ...device }],
    targets: [{ iqn: 'iqn.2026-11.io.spindle:t', portals: ['127.0.0.1:3260'], luns: { 0: 'd0' } }],
  });
}

function issues(device: Record<string, unknown>): { path: string; message: string }[] {
  try {
    parseConfig(config(device), 'test.yaml', ENV);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map(({ path, message }) => ({ path, message }));
  }
  throw new Error('expected the configuration to be rejected');
}

describe('device thin / removable / physicalBlockSize', () => {
  it('defaults to fully provisioned, not removable, physical = logical', () => {
    const dev = parseConfig(config({}), 'test.yaml', ENV).devices[0]!;
    expect(dev.thin ?? false).toBe(false);
    expect(dev.removable ?? false).toBe(false);
    expect(dev.physicalBlockSize).toBeUndefined();
  });

  it('accepts the options', () => {
    const dev = parseConfig(config({ thin: true, removable: true, physicalBlockSize: 4096 }), 't.yaml', ENV)
      .devices[0]!;
    expect(dev).toMatchObject({ thin: true, removable: true, physicalBlockSize: 4096, blockSize: 512 });
  });

  it.each([
    [{ thin: 'yes' }, 'devices[0].thin', 'must be true or false'],
    [{ removable: 1 }, 'devices[0].removable', 'must be true or false'],
    [{ physicalBlockSize: 3000 }, 'devices[0].physicalBlockSize', 'must be one of 512, 1024'],
    [{ physicalBlockSize: 131072 }, 'devices[0].physicalBlockSize', 'must be one of'],
    [
      { physicalBlockSize: 512, blockSize: 4096, ram: { size: '1MiB' } },
      'devices[0].physicalBlockSize',
      'must be at least the logical block size (4096)',
    ],
    [{ thn: true }, 'devices[0].thn', 'did you mean "thin"'],
  ])('rejects %j', (device, path, message) => {
    expect(issues(device)).toContainEqual({ path, message: expect.stringContaining(message) });
  });
});

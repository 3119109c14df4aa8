/**
 * Configuration of iSCSI security and session policy: mutual CHAP per target and for
 * discovery (RFC 7143 12.1.3, 9.2.1), NOP-In pings, the per-target session cap and the
 * failed-authentication backoff.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  ConfigError,
  parseConfig,
  type ConfigEnv,
  type ConfigIssue,
} from '../../../src/supervisor/config/load.ts';

const ENV: ConfigEnv = { hostname: 'host-a', cores: 4, cwd: '/srv/spindle' };
const INI_SECRET = 'initiator-secret-1';
const TGT_SECRET = 'target-secret-22';
const DISC_SECRET = 'discovery-secret';

type Json = Record<string, unknown>;

function config(over: { targets?: Json[]; discovery?: Json; iscsi?: Json } = {}): string {
  const targets = over.targets ?? [{}];
  return stringify({
    devices: [{ name: 'ram0', ram: { size: '64MiB' } }],
    targets: targets.map((t, i) => ({
      iqn: `iqn.2026-11.io.spindle:t${i}`,
      portals: ['127.0.0.1:3260'],
      luns: { 0: 'ram0' },
      ...t,
    })),
    ...(over.discovery === undefined ? {} : { discovery: over.discovery }),
    ...(over.iscsi === undefined ? {} : { iscsi: over.iscsi }),
  });
}

function issuesOf(text: string): Array<Pick<ConfigIssue, 'path' | 'message'>> {
  try {
    parseConfig(text, 'test.yaml', ENV);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map(({ path, message }) => ({ path, message }));
  }
  throw new Error('expected the configuration to be rejected');
}

function expectOnly(text: string, path: string, message: string): ConfigIssue[] {
  const issues = issuesOf(text);
  expect(issues).toHaveLength(1);
  expect(issues[0]).toEqual({ path, message: expect.stringContaining(message) });
  return issues as ConfigIssue[];
}

const chap = (user: string, secret: string): Json => ({ user, secret });

describe('mutual CHAP configuration', () => {
  it('parses mutualChap per target and under discovery.auth', () => {
    const c = parseConfig(
      config({
        targets: [{ auth: { chap: chap('alice', INI_SECRET), mutualChap: chap('tgt', TGT_SECRET) } }],
        discovery: { auth: { chap: chap('disc', DISC_SECRET), mutualChap: chap('spindle', TGT_SECRET) } },
      }),
      'x',
      ENV,
    );
    expect(c.targets[0]?.auth).toEqual({
      chap: { user: 'alice', secret: INI_SECRET },
      mutualChap: { user: 'tgt', secret: TGT_SECRET },
    });
    expect(c.discovery).toEqual({
      auth: {
        chap: { user: 'disc', secret: DISC_SECRET },
        mutualChap: { user: 'spindle', secret: TGT_SECRET },
      },
    });
  });

  it('allows one initiator secret for several targets, and one target secret for several targets', () => {
    const auth = { chap: chap('alice', INI_SECRET), mutualChap: chap('tgt', TGT_SECRET) };
    const c = parseConfig(config({ targets: [{ auth }, { auth }] }), 'x', ENV);
    expect(c.targets.map((t) => t.auth?.mutualChap?.user)).toEqual(['tgt', 'tgt']);
  });

  it('refuses mutualChap without chap, naming the field', () => {
    expectOnly(
      config({ targets: [{ auth: { mutualChap: chap('tgt', TGT_SECRET) } }] }),
      'targets[0].auth.mutualChap',
      'mutualChap requires chap',
    );
    expectOnly(
      config({ discovery: { auth: { mutualChap: chap('tgt', TGT_SECRET) } } }),
      'discovery.auth.mutualChap',
      'mutualChap requires chap',
    );
  });

  it('refuses the same secret in both directions of one target, without echoing it', () => {
    const issues = expectOnly(
      config({
        targets: [{ auth: { chap: chap('alice', INI_SECRET), mutualChap: chap('tgt', INI_SECRET) } }],
      }),
      'targets[0].auth.mutualChap.secret',
      'must differ from the secret at targets[0].auth.chap.secret',
    );
    expect(issues[0]?.message).toContain('RFC 7143 section 9.2.1');
    expect(JSON.stringify(issues)).not.toContain(INI_SECRET);
  });

  it('refuses a target secret that authenticates initiators elsewhere in the file', () => {
    // Discovery's target secret is target 0's initiator secret.
    expectOnly(
      config({
        targets: [{ auth: { chap: chap('alice', INI_SECRET) } }],
        discovery: { auth: { chap: chap('disc', DISC_SECRET), mutualChap: chap('spindle', INI_SECRET) } },
      }),
      'discovery.auth.mutualChap.secret',
      'targets[0].auth.chap.secret',
    );
    // Target 1's target secret is the discovery initiator secret.
    expectOnly(
      config({
        targets: [{}, { auth: { chap: chap('bob', INI_SECRET), mutualChap: chap('tgt', DISC_SECRET) } }],
        discovery: { auth: { chap: chap('disc', DISC_SECRET) } },
      }),
      'targets[1].auth.mutualChap.secret',
      'discovery.auth.chap.secret',
    );
  });

  it('validates mutualChap like chap (RFC 7143 12.1.3 secret length, known keys)', () => {
    expectOnly(
      config({ targets: [{ auth: { chap: chap('alice', INI_SECRET), mutualChap: chap('tgt', 'short') } }] }),
      'targets[0].auth.mutualChap.secret',
      'at least 12',
    );
    expectOnly(
      config({ targets: [{ auth: { chap: chap('alice', INI_SECRET), mutualChap: { user: 'tgt' } } }] }),
      'targets[0].auth.mutualChap.secret',
      'CHAP secret is required',
    );
    expectOnly(
      config({ targets: [{ auth: { chap: chap('alice', INI_SECRET), mutalChap: chap('t', TGT_SECRET) } }] }),
      'targets[0].auth.mutalChap',
      'did you mean "mutualChap"',
    );
  });
});

describe('session policy settings (iscsi.*)', () => {
  it('defaults: pings every 30 s with a 15 s timeout, 256 sessions per target, 30 s backoff cap', () => {
    const c = parseConfig(config(), 'x', ENV);
    expect(c.iscsi).toMatchObject({
      nopIntervalSec: 30,
      nopTimeoutSec: 15,
      maxSessionsPerTarget: 256,
      authBackoffMaxSec: 30,
    });
  });

  it('accepts set values, and 0 to disable pings and the backoff', () => {
    const c = parseConfig(
      config({
        iscsi: { nopIntervalSec: 0, nopTimeoutSec: 60, maxSessionsPerTarget: 1, authBackoffMaxSec: 0 },
      }),
      'x',
      ENV,
    );
    expect(c.iscsi).toMatchObject({
      nopIntervalSec: 0,
      nopTimeoutSec: 60,
      maxSessionsPerTarget: 1,
      authBackoffMaxSec: 0,
    });
  });

  it.each([
    [{ nopIntervalSec: -1 }, 'iscsi.nopIntervalSec', 'must be an integer 0-3600'],
    [{ nopIntervalSec: 3601 }, 'iscsi.nopIntervalSec', 'must be an integer 0-3600'],
    [{ nopIntervalSec: '30' }, 'iscsi.nopIntervalSec', 'must be an integer 0-3600'],
    [{ nopTimeoutSec: 0 }, 'iscsi.nopTimeoutSec', 'must be an integer 1-3600'],
    [{ nopTimeoutSec: 1.5 }, 'iscsi.nopTimeoutSec', 'must be an integer 1-3600'],
    [{ maxSessionsPerTarget: 0 }, 'iscsi.maxSessionsPerTarget', 'must be an integer 1-65535'],
    [{ maxSessionsPerTarget: 65536 }, 'iscsi.maxSessionsPerTarget', 'must be an integer 1-65535'],
    [{ authBackoffMaxSec: -5 }, 'iscsi.authBackoffMaxSec', 'must be an integer 0-3600'],
    [{ nopInterval: 30 }, 'iscsi.nopInterval', 'did you mean "nopIntervalSec"'],
    [{ nopTimeout: 15 }, 'iscsi.nopTimeout', 'did you mean "nopTimeoutSec"'],
    [{ maxSessionPerTarget: 8 }, 'iscsi.maxSessionPerTarget', 'did you mean "maxSessionsPerTarget"'],
  ])('%j', (iscsi, path, message) => {
    expectOnly(config({ iscsi }), path, message);
  });
});

describe('iscsi.immediateData / iscsi.initialR2T', () => {
  it('default to Yes / No and accept booleans', async () => {
    const { parseConfig } = await import('../../../src/supervisor/config/load.ts');
    const base = `devices: [{ name: r, ram: { size: 1MiB } }]
targets: [{ iqn: 'iqn.2026-11.io.spindle:x', portals: ['127.0.0.1:3260'], luns: { 0: r } }]
`;
    const d = parseConfig(base, 'x.yaml');
    expect(d.iscsi.immediateData).toBe(true);
    expect(d.iscsi.initialR2T).toBe(false);
    const c = parseConfig(base + 'iscsi: { immediateData: false, initialR2T: true }\n', 'x.yaml');
    expect(c.iscsi.immediateData).toBe(false);
    expect(c.iscsi.initialR2T).toBe(true);
    expect(() => parseConfig(base + 'iscsi: { immediateData: maybe }\n', 'x.yaml')).toThrow(/iscsi\.immediateData/);
  });

  it('iscsi.dataPDUInOrder / iscsi.dataSequenceInOrder default to No (accept what the initiator offers)', async () => {
    const { parseConfig } = await import('../../../src/supervisor/config/load.ts');
    const base = `devices: [{ name: r, ram: { size: 1MiB } }]
targets: [{ iqn: 'iqn.2026-11.io.spindle:x', portals: ['127.0.0.1:3260'], luns: { 0: r } }]
`;
    const d = parseConfig(base, 'x.yaml');
    expect([d.iscsi.dataPDUInOrder, d.iscsi.dataSequenceInOrder]).toEqual([false, false]);
    const c = parseConfig(base + 'iscsi: { dataPDUInOrder: true, dataSequenceInOrder: true }\n', 'x.yaml');
    expect([c.iscsi.dataPDUInOrder, c.iscsi.dataSequenceInOrder]).toEqual([true, true]);
    expect(() => parseConfig(base + 'iscsi: { dataSequenceInOrder: 1 }\n', 'x.yaml')).toThrow(
      /iscsi\.dataSequenceInOrder/,
    );
  });
});

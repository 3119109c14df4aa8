/**
 * LUN masking configuration: targets[].acls and targets[].defaultAccess (issue 5).
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  ConfigError,
  parseConfig,
  type ConfigEnv,
  type ConfigIssue,
} from '../../../src/supervisor/config/load.ts';
import { initiatorPatternProblem } from '../../../src/supervisor/config/schema.ts';

const ENV: ConfigEnv = { hostname: 'host-a', cores: 4, cwd: '/srv/spindle' };
const IQN = 'iqn.2026-11.io.spindle:demo';
const HOST_A = 'iqn.1994-05.com.redhat:host-a';
const HOST_B = 'iqn.1994-05.com.redhat:host-b';

/** One target with `extra` merged in; devices ram0, ram1, ram2. */
function config(extra: Record<string, unknown>, omitLuns = false): string {
  const target: Record<string, unknown> = {
    iqn: IQN,
    portals: ['127.0.0.1:3260'],
    luns: { 0: 'ram0' },
    ...extra,
  };
  if (omitLuns) delete target['luns'];
  return stringify({
    devices: ['ram0', 'ram1', 'ram2'].map((name) => ({ name, ram: { size: '1MiB' } })),
    targets: [target],
  });
}

function issuesOf(text: string): Array<{ path: string; message: string }> {
  try {
    parseConfig(text, 'test.yaml', ENV);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map(({ path, message }: ConfigIssue) => ({ path, message }));
  }
  throw new Error('expected the configuration to be rejected');
}

function expectOnly(text: string, path: string, message: string): void {
  const issues = issuesOf(text);
  expect(issues).toHaveLength(1);
  expect(issues[0]).toEqual({ path, message: expect.stringContaining(message) });
}

describe('acls: valid', () => {
  it("without acls the target has no masking fields (today's behaviour)", () => {
    const t = parseConfig(config({}), 'x', ENV).targets[0]!;
    expect(t.acls).toBeUndefined();
    expect(t.defaultAccess).toBeUndefined();
  });

  it('normalizes initiator to initiators and defaults defaultAccess to deny with acls', () => {
    const t = parseConfig(
      config({
        acls: [
          { initiator: HOST_A, luns: { 0: 'ram0', 1: 'ram1' } },
          { initiators: [HOST_B, 'iqn.2001-04.com.example:*'], luns: { 0: 'ram2' } },
        ],
      }),
      'x',
      ENV,
    ).targets[0]!;
    expect(t.acls).toEqual([
      { initiators: [HOST_A], luns: { 0: 'ram0', 1: 'ram1' } },
      { initiators: [HOST_B, 'iqn.2001-04.com.example:*'], luns: { 0: 'ram2' } },
    ]);
    expect(t.defaultAccess).toBe('deny');
  });

  it('keeps an explicit defaultAccess: allow, and passes per-entry auth through', () => {
    const t = parseConfig(
      config({
        defaultAccess: 'allow',
        acls: [
          { initiator: HOST_A, luns: { 3: 'ram1' }, auth: { chap: { user: 'a', secret: '0123456789ab' } } },
        ],
      }),
      'x',
      ENV,
    ).targets[0]!;
    expect(t.defaultAccess).toBe('allow');
    expect(t.acls?.[0]?.auth).toEqual({ chap: { user: 'a', secret: '0123456789ab' } });
  });

  it('lets luns be omitted when acls are given and the default is deny', () => {
    const t = parseConfig(config({ acls: [{ initiator: '*', luns: { 0: 'ram0' } }] }, true), 'x', ENV)
      .targets[0]!;
    expect(t.luns).toEqual({});
  });

  it('accepts defaultAccess: deny without acls (a target nobody may use)', () => {
    expect(parseConfig(config({ defaultAccess: 'deny' }), 'x', ENV).targets[0]!.defaultAccess).toBe('deny');
  });
});

describe('acls: errors name their path', () => {
  it('rejects a bad defaultAccess', () => {
    expectOnly(config({ defaultAccess: 'maybe' }), 'targets[0].defaultAccess', 'must be one of allow, deny');
  });

  it('rejects acls that are not a list, or an empty list', () => {
    expectOnly(config({ acls: { initiator: HOST_A } }), 'targets[0].acls', 'must be a list');
    expectOnly(config({ acls: [] }), 'targets[0].acls', 'at least one entry');
  });

  it('rejects unknown keys in an entry', () => {
    expectOnly(
      config({ acls: [{ initiator: HOST_A, lun: { 0: 'ram0' }, luns: { 0: 'ram0' } }] }),
      'targets[0].acls[0].lun',
      'unknown key "lun"',
    );
  });

  it('requires exactly one of initiator / initiators', () => {
    expectOnly(
      config({ acls: [{ luns: { 0: 'ram0' } }] }),
      'targets[0].acls[0].initiator',
      'initiator is required',
    );
    expectOnly(
      config({ acls: [{ initiator: HOST_A, initiators: [HOST_B], luns: { 0: 'ram0' } }] }),
      'targets[0].acls[0].initiators',
      'either initiator or initiators',
    );
    expectOnly(
      config({ acls: [{ initiators: [], luns: { 0: 'ram0' } }] }),
      'targets[0].acls[0].initiators',
      'at least one',
    );
  });

  it('rejects invalid names and patterns', () => {
    expectOnly(
      config({ acls: [{ initiator: 'host-a', luns: { 0: 'ram0' } }] }),
      'targets[0].acls[0].initiator',
      'must start with iqn.',
    );
    expectOnly(
      config({ acls: [{ initiators: [HOST_A, 'iqn.1994-05.com.redhat:h?st*'], luns: { 0: 'ram0' } }] }),
      'targets[0].acls[0].initiators[1]',
      'invalid initiator pattern',
    );
  });

  it('rejects an initiator listed twice (case-insensitively)', () => {
    expectOnly(
      config({
        acls: [
          { initiator: HOST_A, luns: { 0: 'ram0' } },
          {
            initiators: [HOST_B, HOST_A.toUpperCase().replace('IQN.', 'iqn.').replace(':HOST-A', ':*')],
            luns: { 0: 'ram1' },
          },
          { initiator: 'iqn.1994-05.com.redhat:host-b', luns: { 0: 'ram1' } },
        ],
      }),
      'targets[0].acls[2].initiator',
      'already listed at targets[0].acls[1].initiators[0]',
    );
  });

  it('checks the entry LUN map like the target one', () => {
    expectOnly(
      config({ acls: [{ initiator: HOST_A, luns: { 0: 'nope' } }] }),
      'targets[0].acls[0].luns.0',
      'unknown device "nope"',
    );
    expectOnly(
      config({ acls: [{ initiator: HOST_A, luns: {} }] }),
      'targets[0].acls[0].luns',
      'at least one LUN',
    );
    expectOnly(
      config({ acls: [{ initiator: HOST_A, luns: { 0: 'ram0', 1: 'ram0' } }] }),
      'targets[0].acls[0].luns.1',
      'already LUN 0 of this ACL entry',
    );
    expectOnly(
      config({ acls: [{ initiator: HOST_A, luns: { 99999: 'ram0' } }] }),
      'targets[0].acls[0].luns.99999',
      'LUN number',
    );
  });

  it('requires the target luns when initiators matching no entry are allowed', () => {
    expectOnly(
      config({ defaultAccess: 'allow', acls: [{ initiator: HOST_A, luns: { 0: 'ram0' } }] }, true),
      'targets[0].luns',
      'defaultAccess: allow',
    );
  });

  it('still requires luns on a target without acls', () => {
    expectOnly(config({}, true), 'targets[0].luns', 'at least one LUN is required');
  });
});

describe('initiatorPatternProblem', () => {
  it('accepts exact names and * patterns', () => {
    expect(initiatorPatternProblem(HOST_A)).toBeUndefined();
    expect(initiatorPatternProblem('*')).toBeUndefined();
    expect(initiatorPatternProblem('iqn.1994-05.com.redhat:*')).toBeUndefined();
    expect(initiatorPatternProblem('eui.*')).toBeUndefined();
  });
  it('rejects other characters and over-long patterns', () => {
    expect(initiatorPatternProblem('iqn.* x')).toMatch(/invalid initiator pattern/);
    expect(initiatorPatternProblem(`iqn.${'a'.repeat(230)}*`)).toMatch(/at most 223/);
  });
});

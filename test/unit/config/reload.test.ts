/**
 * Configuration reload planning (supervisor/reload.ts planReload) and the `aluaStates`
 * setting: what a new file may change while serving, and the exact refusals.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, parseConfig, type ConfigEnv } from '../../../src/supervisor/config/load.ts';
import { planReload, type ReloadPlan, type ReloadProblem } from '../../../src/supervisor/reload.ts';
import { Topology } from '../../../src/supervisor/topology.ts';
import type { SpindleConfig } from '../../../src/shared/config-types.ts';
import { AluaState } from '../../../src/workers/lun/alua/port-groups.ts';

const ENV: ConfigEnv = { hostname: 'host-a', cores: 4, cwd: '/srv/spindle' };
const IQN = 'iqn.2026-11.io.spindle:demo';

interface Doc {
  devices?: Record<string, unknown>[];
  targets?: Record<string, unknown>[];
  [k: string]: unknown;
}

function base(): Doc {
  return {
    workers: { session: 2, lun: 2 },
    devices: [
      { name: 'ram0', ram: { size: '8MiB' } },
      { name: 'ram1', ram: { size: '8MiB' } },
    ],
    targets: [{ iqn: IQN, portals: ['127.0.0.1:3260', '[::1]:3260'], luns: { 0: 'ram0', 1: 'ram1' } }],
  };
}

function cfg(doc: Doc): SpindleConfig {
  return parseConfig(stringify(doc), 'test.yaml', ENV);
}

function plan(next: Doc, current: Doc = base()): ReloadPlan {
  const cur = cfg(current);
  const r = planReload(cur, cfg(next), new Topology(cur, 2));
  if ('problems' in r) throw new Error(JSON.stringify(r.problems));
  return r.plan;
}

function problems(next: Doc, current: Doc = base()): ReloadProblem[] {
  const cur = cfg(current);
  const r = planReload(cur, cfg(next), new Topology(cur, 2));
  return 'problems' in r ? r.problems : [];
}

describe('planReload', () => {
  it('the same file changes nothing', () => {
    expect(plan(base()).empty).toBe(true);
  });

  it('a device that grows is resized; one that shrinks is refused naming the size field', () => {
    const grow = base();
    grow.devices![1] = { name: 'ram1', ram: { size: '16MiB' } };
    expect(plan(grow).grow).toEqual([{ name: 'ram1', sizeBytes: 16 * 1024 * 1024 }]);
    const shrink = base();
    shrink.devices![0] = { name: 'ram0', ram: { size: '4MiB' } };
    const p = problems(shrink);
    expect(p).toHaveLength(1);
    expect(p[0]!.path).toBe('devices[0].ram.size');
    expect(p[0]!.message).toMatch(/cannot shrink/);
  });

  it('other device changes need a restart, each named', () => {
    const d = base();
    d.devices![1] = { name: 'ram1', ram: { size: '8MiB' }, readOnly: true, blockSize: 4096 };
    expect(problems(d).map((x) => x.path).sort()).toEqual(['devices[1].blockSize', 'devices[1].readOnly']);
    const f = base();
    f.devices![1] = { name: 'ram1', file: { path: '/tmp/x.img', size: '8MiB' } };
    expect(problems(f).map((x) => x.path)).toEqual(['devices[1].file']);
  });

  it('devices added and removed, and a LUN map change, are applied live', () => {
    const d = base();
    d.devices = [d.devices![0]!, { name: 'ram2', ram: { size: '1MiB' } }];
    d.targets![0]!['luns'] = { 0: 'ram0', 7: 'ram2' };
    const p = plan(d);
    expect(p.add.map((x) => x.name)).toEqual(['ram2']);
    expect(p.remove).toEqual(['ram1']);
    expect(p.routesChanged).toBe(true);
  });

  it('ACLs, defaultAccess, CHAP and discovery auth change the routes only', () => {
    const d = base();
    d.targets![0]!['acls'] = [{ initiator: 'iqn.1994-05.com.redhat:*', luns: { 0: 'ram1' } }];
    d.targets![0]!['defaultAccess'] = 'deny';
    d['discovery'] = { auth: { chap: { user: 'disc', secret: 'discovery-secret-1' } } };
    const p = plan(d);
    expect([p.routesChanged, p.aluaChanged, p.add.length, p.remove.length, p.grow.length]).toEqual([true, false, 0, 0, 0]);
  });

  it('a target added on a served portal is live; a new portal, a dropped portal or a moved target are refused', () => {
    const add = base();
    add.targets!.push({ iqn: `${IQN}-2`, portals: ['127.0.0.1:3260'], luns: { 0: 'ram1' } });
    expect(plan(add).routesChanged).toBe(true);
    const newPortal = base();
    newPortal.targets!.push({ iqn: `${IQN}-2`, portals: ['127.0.0.1:3261'], luns: { 0: 'ram1' } });
    expect(problems(newPortal).map((x) => x.path)).toEqual(['targets[1].portals[0]']);
    const dropped = base();
    dropped.targets![0]!['portals'] = ['127.0.0.1:3260'];
    expect(problems(dropped).map((x) => x.path).sort()).toEqual(['targets', 'targets[0].portals']);
  });

  it('start-only settings are refused by name', () => {
    const d = base();
    d['iscsi'] = { maxBurstLength: 131072 };
    d['workers'] = { session: 1, lun: 2 };
    d['clusterId'] = 'other';
    expect(problems(d).map((x) => x.path).sort()).toEqual(['clusterId', 'iscsi', 'workers']);
  });

  it('aluaStates changes are planned; the topology maps them to SPC-4 state codes per group', () => {
    const d = base();
    d['aluaStates'] = { '[::1]:3260': 'standby' };
    const p = plan(d);
    expect(p.aluaChanged).toBe(true);
    const next = cfg(d);
    expect(new Topology(next, 2).aluaStates(next)).toEqual([
      { group: 1, state: AluaState.ACTIVE_OPTIMIZED },
      { group: 2, state: AluaState.STANDBY },
    ]);
  });
});

describe('aluaStates config', () => {
  function issues(aluaStates: unknown): string[] {
    const d = base();
    d['aluaStates'] = aluaStates;
    try {
      cfg(d);
      return [];
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
    }
  }

  it('accepts every state name for a served portal, written in any IPv6 form', () => {
    for (const s of ['active-optimized', 'active-non-optimized', 'standby', 'unavailable', 'transitioning']) {
      expect(issues({ '127.0.0.1:3260': s })).toEqual([]);
    }
    expect(issues({ '[0:0:0:0:0:0:0:1]:3260': 'standby' })).toEqual([]);
  });

  it('names the bad entry: unknown portal, bad state, not a mapping', () => {
    expect(issues({ '127.0.0.1:9999': 'standby' })[0]).toMatch(/^aluaStates\["127.0.0.1:9999"\]: no target listens on 127.0.0.1:9999/);
    expect(issues({ '127.0.0.1:3260': 'offline' })[0]).toMatch(/^aluaStates\["127.0.0.1:3260"\]: must be one of active-optimized/);
    expect(issues(['standby'])[0]).toMatch(/^aluaStates: must be a mapping/);
  });
});

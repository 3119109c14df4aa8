/**
 * LUN masking in the routing tables: routeFor, loginAccess, sessionRoute (routes.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  loginAccess,
  routeFor,
  routesFromWire,
  sessionRoute,
  type LunRoute,
  type RoutesWire,
  type TargetRoute,
} from '../../../src/workers/session/routes.ts';

const r = (device: string, luIndex: number): LunRoute => ({ lunWorker: 0, luIndex, device });
const CHAP_A = { chap: { user: 'a', secret: '0123456789ab' } };
const CHAP_T = { chap: { user: 't', secret: 'target-secret-1' } };

function target(over: Partial<RoutesWire['targets'][number]> = {}): TargetRoute {
  const wire: RoutesWire = {
    portals: [{ host: '127.0.0.1', port: 3260, tag: 1, group: 1 }],
    targets: [{ iqn: 'iqn.2026-11.io.spindle:t', luns: [[0, r('ram0', 0)]], portals: [0], ...over }],
  };
  return routesFromWire(wire).targets.get('iqn.2026-11.io.spindle:t')!;
}

describe('routeFor', () => {
  it('without acls every initiator sees the target luns', () => {
    const t = target({ auth: CHAP_T });
    const v = routeFor(t, 'iqn.1994-05.com.redhat:anyone')!;
    expect(v.luns).toBe(t.luns);
    expect(v.lunList).toEqual([0]);
    expect(v.auth).toEqual(CHAP_T);
    expect(loginAccess(t)).toEqual({});
  });

  it('defaultAccess deny without acls refuses everyone', () => {
    const t = target({ defaultAccess: 'deny' });
    expect(routeFor(t, 'iqn.1994-05.com.redhat:anyone')).toBeNull();
    expect(loginAccess(t).authorize!('iqn.1994-05.com.redhat:anyone')).toBe(false);
  });

  const masked = (): TargetRoute =>
    target({
      defaultAccess: 'deny',
      acls: [
        { initiators: ['iqn.1994-05.com.redhat:*'], luns: [[0, r('ram2', 2)]] },
        {
          initiators: ['iqn.1994-05.com.redhat:host-a'],
          luns: [
            [1, r('ram1', 1)],
            [0, r('ram0', 0)],
          ],
          auth: CHAP_A,
        },
        { initiators: ['iqn.2001-04.com.example:*:db', 'eui.0123456789abcdef'], luns: [[5, r('ram0', 0)]] },
      ],
    });

  it('an exact name wins over an earlier pattern, and compares case-insensitively', () => {
    const t = masked();
    const a = routeFor(t, 'iqn.1994-05.com.redhat:HOST-A')!;
    expect(a.lunList).toEqual([0, 1]);
    expect(a.luns.get(0)?.device).toBe('ram0');
    expect(a.auth).toEqual(CHAP_A);
    const other = routeFor(t, 'iqn.1994-05.com.redhat:host-b')!;
    expect(other.lunList).toEqual([0]);
    expect(other.luns.get(0)?.device).toBe('ram2');
    expect(other.auth).toBeUndefined();
  });

  it('patterns match whole names; regex characters in them are literal', () => {
    const t = masked();
    expect(routeFor(t, 'iqn.2001-04.com.example:rack1:db')?.lunList).toEqual([5]);
    expect(routeFor(t, 'iqn.2001-04.com.example:rack1:db2')).toBeNull();
    expect(routeFor(t, 'iqn.2001-04XcomXexample:rack1:db')).toBeNull(); // '.' is not "any character"
    expect(routeFor(t, 'EUI.0123456789ABCDEF')?.lunList).toEqual([5]);
    expect(routeFor(t, 'iqn.1993-08.org.debian:01:cafe')).toBeNull();
  });

  it('defaultAccess allow gives unmatched initiators the target luns', () => {
    const t = target({
      defaultAccess: 'allow',
      acls: [{ initiators: ['iqn.1994-05.com.redhat:host-a'], luns: [[3, r('ram1', 1)]] }],
    });
    expect(routeFor(t, 'iqn.1993-08.org.debian:01:cafe')?.lunList).toEqual([0]);
    expect(routeFor(t, 'iqn.1994-05.com.redhat:host-a')?.lunList).toEqual([3]);
  });
});

describe('loginAccess / sessionRoute', () => {
  it('authorize and authFor follow routeFor', () => {
    const t = target({
      auth: CHAP_T,
      acls: [
        { initiators: ['iqn.1994-05.com.redhat:host-a'], luns: [[0, r('ram0', 0)]], auth: CHAP_A },
        { initiators: ['iqn.1994-05.com.redhat:host-b'], luns: [[0, r('ram0', 0)]] },
      ],
      defaultAccess: 'deny',
    });
    const access = loginAccess(t);
    expect(access.authorize!('iqn.1994-05.com.redhat:host-a')).toBe(true);
    expect(access.authorize!('iqn.1994-05.com.redhat:host-c')).toBe(false);
    expect(access.authFor!('iqn.1994-05.com.redhat:host-a')).toEqual(CHAP_A);
    // An entry without its own credentials: the login falls back to the target's auth.
    expect(access.authFor!('iqn.1994-05.com.redhat:host-b')).toBeUndefined();
  });

  it('sessionRoute swaps in the initiator LUN map and keeps everything else', () => {
    const t = target({
      defaultAccess: 'allow',
      acls: [{ initiators: ['iqn.1994-05.com.redhat:host-a'], luns: [[7, r('ram1', 1)]] }],
    });
    expect(sessionRoute(t, 'iqn.1993-08.org.debian:01:cafe')).toBe(t);
    const a = sessionRoute(t, 'iqn.1994-05.com.redhat:host-a')!;
    expect(a.iqn).toBe(t.iqn);
    expect(a.portals).toBe(t.portals);
    expect([...a.luns.keys()]).toEqual([7]);
    expect(a.lunList).toEqual([7]);
    expect(sessionRoute(target({ defaultAccess: 'deny' }), 'iqn.1993-08.org.debian:01:cafe')).toBeNull();
  });
});

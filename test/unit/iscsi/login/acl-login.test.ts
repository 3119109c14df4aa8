/**
 * LUN masking at login and in discovery: AUTHORIZATION FAILURE (RFC 7143 11.13.5) and
 * SendTargets lists only targets the initiator may log in to.
 */
import { describe, expect, it } from 'vitest';
import { buildTextKeys } from '../../../../src/shared/iscsi/text-keys.ts';
import { LoginPhase, LoginStatus } from '../../../../src/workers/session/iscsi/login/login-phase.ts';
import {
  buildSendTargetsResponse,
  handleTextRequest,
} from '../../../../src/workers/session/iscsi/login/discovery.ts';
import type {
  LoginContext,
  LoginRequest,
  LoginTargetInfo,
} from '../../../../src/workers/session/iscsi/login/types.ts';
import { tuning } from './helpers.ts';

const OPEN = 'iqn.2024-01.io.spindle:open';
const MASKED = 'iqn.2024-01.io.spindle:masked';
const ALLOWED = 'iqn.1994-05.com.redhat:host-a';
const STRANGER = 'iqn.1993-08.org.debian:01:cafe';

const targets: LoginTargetInfo[] = [
  { iqn: OPEN, portalGroupTag: 1, addresses: ['192.0.2.10:3260,1'] },
  {
    iqn: MASKED,
    portalGroupTag: 1,
    addresses: ['192.0.2.10:3260,1', '192.0.2.11:3260,2'],
    authorize: (name) => name === ALLOWED,
  },
];

function ctx(): LoginContext {
  let tsih = 1;
  return {
    targets,
    portalGroupTag: 1,
    tuning,
    allocTsih: () => ++tsih,
    peer: '198.51.100.7:40000',
    log: { info: () => undefined, warn: () => undefined },
  };
}

function leading(keys: Record<string, string>): LoginRequest {
  return {
    transit: true,
    cont: false,
    csg: 1,
    nsg: 3,
    versionMax: 0,
    versionMin: 0,
    isid: Buffer.from([0, 2, 0x3d, 0, 0, 1]),
    tsih: 0,
    itt: 1,
    cid: 0,
    cmdSN: 1,
    expStatSN: 0,
    data: buildTextKeys(Object.entries(keys)),
  };
}

describe('login authorization', () => {
  it('refuses an initiator the target ACLs do not allow with status 0202h', () => {
    const r = new LoginPhase(ctx()).step(leading({ InitiatorName: STRANGER, TargetName: MASKED }));
    expect(r.failed).toBe(true);
    expect(r.response.statusClass).toBe(LoginStatus.AUTHORIZATION_FAILURE.statusClass);
    expect(r.response.statusDetail).toBe(0x02);
  });

  it('lets an allowed initiator in, and leaves unmasked targets alone', () => {
    expect(new LoginPhase(ctx()).step(leading({ InitiatorName: ALLOWED, TargetName: MASKED })).complete).toBe(
      true,
    );
    expect(new LoginPhase(ctx()).step(leading({ InitiatorName: STRANGER, TargetName: OPEN })).complete).toBe(
      true,
    );
  });

  it('asks authFor for the initiator credentials', () => {
    const secure: LoginTargetInfo = {
      iqn: MASKED,
      portalGroupTag: 1,
      addresses: [],
      authFor: (name) => (name === ALLOWED ? { chap: { user: 'a', secret: '0123456789ab' } } : undefined),
    };
    const c = { ...ctx(), targets: [secure] };
    // CHAP required for ALLOWED (from authFor): skipping security fails authentication.
    const denied = new LoginPhase(c).step(leading({ InitiatorName: ALLOWED, TargetName: MASKED }));
    expect(denied.response.statusDetail).toBe(LoginStatus.AUTHENTICATION_FAILURE.statusDetail);
    expect(new LoginPhase(c).step(leading({ InitiatorName: STRANGER, TargetName: MASKED })).complete).toBe(
      true,
    );
  });
});

describe('SendTargets with masking', () => {
  it('lists only targets the initiator may log in to', () => {
    const all = (name?: string) => keysOfAll(buildSendTargetsResponse('All', targets, undefined, name));
    expect(
      all(ALLOWED)
        .filter(([k]) => k === 'TargetName')
        .map(([, v]) => v),
    ).toEqual([OPEN, MASKED]);
    expect(
      all(STRANGER)
        .filter(([k]) => k === 'TargetName')
        .map(([, v]) => v),
    ).toEqual([OPEN]);
    expect(
      all(undefined)
        .filter(([k]) => k === 'TargetName')
        .map(([, v]) => v),
    ).toEqual([OPEN]);
  });

  it('does not reveal a masked target asked for by name', () => {
    const ask = (name: string) =>
      handleTextRequest(buildTextKeys([['SendTargets', MASKED]]), { targets, initiatorName: name });
    const denied = ask(STRANGER);
    const allowed = ask(ALLOWED);
    if (!denied.ok || !allowed.ok) throw new Error('text request failed');
    expect(denied.data.length).toBe(0);
    expect(keysOfAll(allowed.data)[0]).toEqual(['TargetName', MASKED]);
  });
});

function keysOfAll(data: Buffer): Array<[string, string]> {
  return data
    .toString('utf8')
    .split('\0')
    .filter((s) => s.length > 0)
    .map((s) => {
      const i = s.indexOf('=');
      return [s.slice(0, i), s.slice(i + 1)] as [string, string];
    });
}

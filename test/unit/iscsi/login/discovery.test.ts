import { describe, expect, it } from 'vitest';
import {
  buildSendTargetsResponse,
  handleTextRequest,
} from '../../../../src/workers/session/iscsi/login/discovery.ts';
import type { LoginTargetInfo } from '../../../../src/workers/session/iscsi/login/types.ts';

const targets: LoginTargetInfo[] = [
  {
    iqn: 'iqn.2024-01.io.spindle:a',
    portalGroupTag: 1,
    addresses: ['192.0.2.10:3260,1', '[2001:db8::10]:3260,1'],
  },
  { iqn: 'iqn.2024-01.io.spindle:b', portalGroupTag: 2, addresses: ['192.0.2.11:3260,2'] },
];
const A =
  'TargetName=iqn.2024-01.io.spindle:a\0TargetAddress=192.0.2.10:3260,1\0TargetAddress=[2001:db8::10]:3260,1\0';
const B = 'TargetName=iqn.2024-01.io.spindle:b\0TargetAddress=192.0.2.11:3260,2\0';

describe('SendTargets (RFC 7143 Appendix C)', () => {
  it('All in a discovery session lists every target and address', () => {
    expect(buildSendTargetsResponse('All', targets).toString()).toBe(A + B);
    expect(buildSendTargetsResponse('All', []).length).toBe(0);
  });

  it('All in a normal session is rejected', () => {
    expect(buildSendTargetsResponse('All', targets, 'iqn.2024-01.io.spindle:a').toString()).toBe(
      'SendTargets=Reject\0',
    );
  });

  it('a target name returns that target (case-insensitive), unknown returns nothing', () => {
    expect(buildSendTargetsResponse('iqn.2024-01.io.spindle:B', targets).toString()).toBe(B);
    expect(buildSendTargetsResponse('iqn.nope', targets).length).toBe(0);
    // In a normal session, only the session's own target.
    expect(
      buildSendTargetsResponse('iqn.2024-01.io.spindle:b', targets, 'iqn.2024-01.io.spindle:a').length,
    ).toBe(0);
    expect(
      buildSendTargetsResponse('iqn.2024-01.io.spindle:a', targets, 'iqn.2024-01.io.spindle:a').toString(),
    ).toBe(A);
  });

  it('the empty value returns the session target in a normal session', () => {
    expect(buildSendTargetsResponse('', targets, 'iqn.2024-01.io.spindle:b').toString()).toBe(B);
    expect(buildSendTargetsResponse('', targets).length).toBe(0);
  });
});

describe('handleTextRequest', () => {
  it('answers SendTargets and NotUnderstood for other keys', () => {
    const r = handleTextRequest(Buffer.from('SendTargets=All\0X-vendor.Thing=1\0'), { targets });
    expect(r).toEqual({ ok: true, data: Buffer.from(`${A}${B}X-vendor.Thing=NotUnderstood\0`) });
  });

  it('reports malformed text instead of throwing', () => {
    expect(handleTextRequest(Buffer.from('SendTargets=All'), { targets })).toEqual({
      ok: false,
      reason: 'missing-nul',
    });
    expect(handleTextRequest(Buffer.from('SendTargets=All\0SendTargets=All\0'), { targets }).ok).toBe(false);
    expect(handleTextRequest(Buffer.alloc(100_000, 0x41), { targets })).toEqual({
      ok: false,
      reason: 'too-long',
    });
  });
});

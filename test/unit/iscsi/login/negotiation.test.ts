import { describe, expect, it } from 'vitest';
import { defaultSessionParams } from '../../../../src/shared/iscsi/session-params.ts';
import { OperationalNegotiator } from '../../../../src/workers/session/iscsi/login/negotiation.ts';
import { pairs, tuning } from './helpers.ts';

const identity = { InitiatorName: 'iqn.i', InitiatorAlias: '', TargetName: 'iqn.t' };

function answer(
  key: string,
  value: string,
  sessionType: 'Normal' | 'Discovery' = 'Normal',
): string | undefined {
  const n = new OperationalNegotiator({ sessionType, tuning });
  const out = n.negotiate([{ key, value }]);
  return out.find(([k]) => k === key)?.[1];
}

describe('operational negotiation (RFC 7143 6.2, 13)', () => {
  it.each([
    // list keys: first initiator value the target supports
    ['HeaderDigest', 'None', 'None'],
    ['HeaderDigest', 'CRC32C,None', 'CRC32C'],
    ['HeaderDigest', 'None,CRC32C', 'None'],
    ['DataDigest', 'CRC32C', 'CRC32C'],
    ['DataDigest', 'MD5', 'Reject'],
    ['DataDigest', 'MD5,None', 'None'],
    // MaxConnections: min with 1
    ['MaxConnections', '1', '1'],
    ['MaxConnections', '8', '1'],
    ['MaxConnections', '0', 'Reject'],
    ['MaxConnections', '65536', 'Reject'],
    // Booleans: InitialR2T OR (target No), ImmediateData AND (target Yes)
    ['InitialR2T', 'No', 'No'],
    ['InitialR2T', 'Yes', 'Yes'],
    ['ImmediateData', 'Yes', 'Yes'],
    ['ImmediateData', 'No', 'No'],
    ['ImmediateData', 'yes', 'Reject'],
    // DataPDUInOrder / DataSequenceInOrder: OR with the target's default No, so the
    // initiator's offer decides (out-of-order Data-Out is accepted)
    ['DataPDUInOrder', 'No', 'No'],
    ['DataPDUInOrder', 'Yes', 'Yes'],
    ['DataSequenceInOrder', 'No', 'No'],
    ['DataSequenceInOrder', 'Yes', 'Yes'],
    ['DataSequenceInOrder', 'maybe', 'Reject'],
    // numeric min
    ['MaxBurstLength', '16776192', '1048576'],
    ['MaxBurstLength', '65536', '65536'],
    ['MaxBurstLength', '0x10000', '65536'],
    ['MaxBurstLength', '511', 'Reject'],
    ['MaxBurstLength', '16777216', 'Reject'],
    ['MaxBurstLength', 'lots', 'Reject'],
    ['FirstBurstLength', '262144', '262144'],
    ['FirstBurstLength', '16776192', '262144'],
    ['FirstBurstLength', '4096', '4096'],
    ['MaxOutstandingR2T', '1', '1'],
    ['MaxOutstandingR2T', '64', '8'],
    ['MaxOutstandingR2T', '0', 'Reject'],
    ['DefaultTime2Retain', '0', '0'],
    ['DefaultTime2Retain', '20', '0'],
    ['DefaultTime2Retain', '3601', 'Reject'],
    ['ErrorRecoveryLevel', '0', '0'],
    ['ErrorRecoveryLevel', '2', '0'],
    ['ErrorRecoveryLevel', '3', 'Reject'],
    ['iSCSIProtocolLevel', '1', '1'],
    ['iSCSIProtocolLevel', '2', '1'],
    ['iSCSIProtocolLevel', '0', '0'],
    // numeric max
    ['DefaultTime2Wait', '2', '2'],
    ['DefaultTime2Wait', '0', '2'],
    ['DefaultTime2Wait', '10', '10'],
    ['DefaultTime2Wait', '3601', 'Reject'],
    // markers (RFC 3720) and RFC 7144 TaskReporting
    ['OFMarker', 'No', 'No'],
    ['IFMarker', 'Yes', 'No'],
    ['IFMarker', 'Maybe', 'Reject'],
    ['OFMarkInt', '2048~8192', 'Reject'],
    ['IFMarkInt', '2048', 'Reject'],
    ['TaskReporting', 'ResponseFence,RFC3720', 'RFC3720'],
    ['TaskReporting', 'FastAbort', 'Reject'],
    // target-only keys, unknown keys
    ['TargetPortalGroupTag', '1', 'Reject'],
    ['TargetAlias', 'x', 'Reject'],
    ['X-com.example.Foo', 'bar', 'NotUnderstood'],
    ['RDMAExtensions', 'Yes', 'NotUnderstood'],
  ])('%s=%s -> %s', (key, value, expected) => {
    expect(answer(key, value)).toBe(expected);
  });

  it('MaxRecvDataSegmentLength is declarative: no answer, bounds what we send', () => {
    const n = new OperationalNegotiator({ sessionType: 'Normal', tuning });
    expect(n.negotiate(pairs({ MaxRecvDataSegmentLength: '65536' }))).toEqual([]);
    expect(n.declarations()).toEqual([['MaxRecvDataSegmentLength', '262144']]);
    expect(n.declarations()).toEqual([]); // only once
    const p = n.finish(identity);
    expect(p.InitiatorMaxRecvDataSegmentLength).toBe(65536);
    expect(p.TargetMaxRecvDataSegmentLength).toBe(262144);
    expect(answer('MaxRecvDataSegmentLength', '100')).toBe('Reject');
  });

  it('does not declare MaxRecvDataSegmentLength when it is the default', () => {
    const n = new OperationalNegotiator({
      sessionType: 'Normal',
      tuning: { ...tuning, maxRecvDataSegmentLength: 8192 },
    });
    expect(n.declarations()).toEqual([]);
    expect(n.finish(identity).TargetMaxRecvDataSegmentLength).toBe(8192);
  });

  it('an undeclared target MaxRecvDataSegmentLength stays at the default', () => {
    const n = new OperationalNegotiator({ sessionType: 'Normal', tuning });
    expect(n.finish(identity).TargetMaxRecvDataSegmentLength).toBe(8192);
  });

  it('FirstBurstLength never exceeds MaxBurstLength', () => {
    const n = new OperationalNegotiator({ sessionType: 'Normal', tuning });
    expect(n.negotiate(pairs({ MaxBurstLength: '4096', FirstBurstLength: '65536' }))).toEqual([
      ['MaxBurstLength', '4096'],
      ['FirstBurstLength', '4096'],
    ]);
    // Other order: FirstBurstLength answered first, clamped at finish.
    const m = new OperationalNegotiator({ sessionType: 'Normal', tuning });
    m.negotiate(pairs({ FirstBurstLength: '65536' }));
    m.negotiate(pairs({ MaxBurstLength: '8192' }));
    const p = m.finish(identity);
    expect(p.MaxBurstLength).toBe(8192);
    expect(p.FirstBurstLength).toBe(8192);
  });

  it('a target configured to insist on in-order data answers Yes to No (RFC 7143 13.18, 13.19: OR)', () => {
    const strict = { ...tuning, dataPDUInOrder: true, dataSequenceInOrder: true };
    const n = new OperationalNegotiator({ sessionType: 'Normal', tuning: strict });
    expect(n.negotiate(pairs({ DataPDUInOrder: 'No', DataSequenceInOrder: 'No' }))).toEqual([
      ['DataPDUInOrder', 'Yes'],
      ['DataSequenceInOrder', 'Yes'],
    ]);
    const p = n.finish(identity);
    expect([p.DataPDUInOrder, p.DataSequenceInOrder]).toEqual([true, true]);
    const lax = new OperationalNegotiator({ sessionType: 'Normal', tuning });
    lax.negotiate(pairs({ DataPDUInOrder: 'No', DataSequenceInOrder: 'Yes' }));
    const q = lax.finish(identity);
    expect([q.DataPDUInOrder, q.DataSequenceInOrder]).toEqual([false, true]);
  });

  it('answers Irrelevant to session keys in a discovery session', () => {
    for (const key of [
      'MaxConnections',
      'InitialR2T',
      'ImmediateData',
      'MaxBurstLength',
      'FirstBurstLength',
      'MaxOutstandingR2T',
      'DataPDUInOrder',
      'DataSequenceInOrder',
    ]) {
      expect(
        answer(key, key.includes('Length') ? '65536' : key.startsWith('Max') ? '1' : 'Yes', 'Discovery'),
      ).toBe('Irrelevant');
    }
    expect(answer('HeaderDigest', 'None', 'Discovery')).toBe('None');
    expect(answer('ErrorRecoveryLevel', '0', 'Discovery')).toBe('0');
  });

  it('rejects over-long simple values and ignores special values', () => {
    expect(answer('HeaderDigest', 'None,'.repeat(60) + 'None')).toBe('Reject');
    const n = new OperationalNegotiator({ sessionType: 'Normal', tuning });
    expect(n.negotiate(pairs({ HeaderDigest: 'NotUnderstood', DataDigest: 'Reject' }))).toEqual([]);
  });

  it('produces open-iscsi final parameters', () => {
    const n = new OperationalNegotiator({ sessionType: 'Normal', tuning });
    const out = n.negotiate(
      pairs({
        HeaderDigest: 'None',
        DataDigest: 'None',
        DefaultTime2Wait: '2',
        DefaultTime2Retain: '0',
        IFMarker: 'No',
        OFMarker: 'No',
        ErrorRecoveryLevel: '0',
        InitialR2T: 'No',
        ImmediateData: 'Yes',
        MaxBurstLength: '16776192',
        FirstBurstLength: '262144',
        MaxOutstandingR2T: '1',
        MaxConnections: '1',
        DataPDUInOrder: 'Yes',
        DataSequenceInOrder: 'Yes',
        MaxRecvDataSegmentLength: '262144',
      }),
    );
    expect(new Map(out)).toEqual(
      new Map([
        ['HeaderDigest', 'None'],
        ['DataDigest', 'None'],
        ['DefaultTime2Wait', '2'],
        ['DefaultTime2Retain', '0'],
        ['IFMarker', 'No'],
        ['OFMarker', 'No'],
        ['ErrorRecoveryLevel', '0'],
        ['InitialR2T', 'No'],
        ['ImmediateData', 'Yes'],
        ['MaxBurstLength', '1048576'],
        ['FirstBurstLength', '262144'],
        ['MaxOutstandingR2T', '1'],
        ['MaxConnections', '1'],
        ['DataPDUInOrder', 'Yes'],
        ['DataSequenceInOrder', 'Yes'],
      ]),
    );
    n.declarations();
    expect(n.finish(identity)).toEqual({
      ...defaultSessionParams(),
      ...identity,
      SessionType: 'Normal',
      TargetMaxRecvDataSegmentLength: 262144,
      InitiatorMaxRecvDataSegmentLength: 262144,
      MaxBurstLength: 1048576,
      FirstBurstLength: 262144,
      InitialR2T: false,
      ImmediateData: true,
      MaxOutstandingR2T: 1,
      DefaultTime2Wait: 2,
      DefaultTime2Retain: 0,
    });
  });
});

/**
 * Residual counts (RFC 7143 11.4.5): when the data the command moved differs from the
 * Expected Data Transfer Length, the final status PDU says by how much, with the U
 * (underflow) or O (overflow) bit. For reads the LU reports how much data the command
 * had (possibly more than EDTL, of which only EDTL bytes go out); for writes how much
 * data-out the CDB called for.
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../../../src/shared/iscsi/pdu.ts';
import { FakeConnection } from '../../helpers/fake-connection.ts';
import type { WirePdu } from '../../helpers/pdu-stream.ts';

const GOOD = 0x00;
const CHECK_CONDITION = 0x02;
const TASK_SET_FULL = 0x28;

/** The status-carrying PDU: the last Data-In with S, or the SCSI Response. */
function statusPdu(out: WirePdu[]): WirePdu {
  const last = out[out.length - 1]!;
  expect(last.opcode === Opcode.SCSI_RESPONSE || last.hasStatus).toBe(true);
  return last;
}

function residualOf(p: WirePdu): { underflow: boolean; overflow: boolean; residual: number } {
  return { underflow: p.underflow, overflow: p.overflow, residual: p.residual };
}

describe('residuals of reads', () => {
  it.each([
    ['exact', 8192, 8192, { underflow: false, overflow: false, residual: 0 }, 8192],
    [
      'underflow: the command had less data than EDTL',
      8192,
      3000,
      { underflow: true, overflow: false, residual: 5192 },
      3000,
    ],
    [
      'overflow: the command had more data than EDTL (only EDTL bytes go out)',
      4096,
      6144,
      { underflow: false, overflow: true, residual: 2048 },
      4096,
    ],
  ])('%s', async (_name, edtl, dataInLength, want, sent) => {
    const h = await FakeConnection.open();
    h.command({ read: true, edtl });
    await h.settle();
    const c = h.lun.take();
    h.lun.complete(c, { dataIn: Buffer.alloc(Math.min(edtl, dataInLength), 0x5a), dataInLength });
    const out = await h.take();
    const s = statusPdu(out);
    expect(s.opcode).toBe(Opcode.DATA_IN); // good status collapses into the last Data-In
    expect(residualOf(s)).toEqual(want);
    expect(out.reduce((n, p) => n + p.data.length, 0)).toBe(sent);
    await h.close();
  });

  it('a read that returns nothing: underflow of the whole EDTL in the SCSI Response', async () => {
    const h = await FakeConnection.open();
    h.command({ read: true, edtl: 2048 });
    await h.settle();
    h.lun.complete(h.lun.take(), { status: CHECK_CONDITION, sense: 'LBA_OUT_OF_RANGE' });
    const s = await h.takeOne();
    expect([s.opcode, s.status]).toEqual([Opcode.SCSI_RESPONSE, CHECK_CONDITION]);
    expect(residualOf(s)).toEqual({ underflow: true, overflow: false, residual: 2048 });
    await h.close();
  });

  it('sense with partial data: the SCSI Response after the Data-In carries the underflow', async () => {
    const h = await FakeConnection.open();
    h.command({ read: true, edtl: 16384 });
    await h.settle();
    h.lun.complete(h.lun.take(), {
      status: CHECK_CONDITION,
      sense: 'UNRECOVERED_READ_ERROR',
      dataIn: Buffer.alloc(8192),
    });
    const out = await h.take();
    expect(out.map((p) => p.opcode)).toEqual([Opcode.DATA_IN, Opcode.SCSI_RESPONSE]);
    expect(out[0]!.hasStatus).toBe(false);
    expect(residualOf(out[1]!)).toEqual({ underflow: true, overflow: false, residual: 8192 });
    await h.close();
  });
});

describe('residuals of writes', () => {
  it.each([
    ['the CDB wanted what EDTL says', 8192, 8192, { underflow: false, overflow: false, residual: 0 }],
    ['the LU did not say (0): no residual', 8192, 0, { underflow: false, overflow: false, residual: 0 }],
    [
      'underflow: the CDB wanted less than EDTL',
      8192,
      4096,
      { underflow: true, overflow: false, residual: 4096 },
    ],
    [
      'overflow: the CDB wanted more than EDTL',
      8192,
      16384,
      { underflow: false, overflow: true, residual: 8192 },
    ],
  ])('%s', async (_name, edtl, dataOutWanted, want) => {
    const h = await FakeConnection.open({ params: { ImmediateData: true, FirstBurstLength: 65536 } });
    h.command({ write: true, edtl, data: Buffer.alloc(edtl, 1) });
    await h.settle();
    h.lun.complete(h.lun.take(), { dataOutWanted });
    const s = await h.takeOne();
    expect([s.opcode, s.status]).toEqual([Opcode.SCSI_RESPONSE, GOOD]);
    expect(residualOf(s)).toEqual(want);
    await h.close();
  });
});

describe('commands answered without reaching the LU', () => {
  it('EDTL over the largest transfer: CHECK CONDITION, INVALID FIELD IN CDB, underflow of all of it', async () => {
    const h = await FakeConnection.open({ tuning: { maxTransferLength: 65536 } });
    const { itt } = h.command({ read: true, edtl: 65536 + 512 });
    const s = await h.takeOne();
    expect([s.opcode, s.itt, s.status]).toEqual([Opcode.SCSI_RESPONSE, itt, CHECK_CONDITION]);
    expect([s.sense[2]! & 0x0f, s.sense[12], s.sense[13]]).toEqual([0x05, 0x24, 0x00]);
    expect(residualOf(s)).toEqual({ underflow: true, overflow: false, residual: 65536 + 512 });
    expect(h.lun.pending()).toEqual([]);
    await h.settle();
    expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
    await h.close();
  });

  it('no slab space now: TASK SET FULL, and the window stays consistent', async () => {
    const h = await FakeConnection.open({ slabBytes: 64 * 1024, tuning: { maxTransferLength: 1024 * 1024 } });
    h.command({ read: true, edtl: 64 * 1024 }); // takes the whole slab, held at the LU
    const { itt } = h.command({ read: true, edtl: 4096 });
    const s = await h.takeOne();
    expect([s.opcode, s.itt, s.status]).toEqual([Opcode.SCSI_RESPONSE, itt, TASK_SET_FULL]);
    expect(s.expCmdSN).toBe(h.cmdSN);
    expect(h.lun.pending()).toHaveLength(1);
    await h.close();
  });
});

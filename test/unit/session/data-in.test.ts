/**
 * Read data and status on the wire (RFC 7143 11.4, 11.7): Data-In PDUs of at most the
 * initiator's MaxRecvDataSegmentLength, F closing each MaxBurstLength sequence, DataSN
 * and Buffer Offset counting up, status in the last Data-In (S bit) when there is no
 * sense data, a separate SCSI Response otherwise; StatSN consumed only by PDUs that
 * carry status.
 */
import { describe, expect, it } from 'vitest';
import { Opcode, RESERVED_TAG } from '../../../src/shared/iscsi/pdu.ts';
import type { SessionParams } from '../../../src/shared/iscsi/session-params.ts';
import { FakeConnection } from '../../helpers/fake-connection.ts';
import type { WirePdu } from '../../helpers/pdu-stream.ts';

const GOOD = 0x00;
const CHECK_CONDITION = 0x02;
const CONDITION_MET = 0x04;
const BUSY = 0x08;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 7 + i * 11 + (i >>> 9)) & 0xff;
  return b;
}

/** Offset, length, F, S, DataSN of each Data-In. */
function shape(pdus: WirePdu[]): Array<[number, number, boolean, boolean, number]> {
  return pdus.map((p) => [p.bufferOffset, p.data.length, p.final, p.hasStatus, p.dataSN]);
}

async function read(
  params: Partial<SessionParams>,
  edtl: number,
  completion: { status?: number; sense?: 'INVALID_FIELD_IN_CDB'; bytes: number },
): Promise<{ h: FakeConnection; itt: number; data: Buffer; out: WirePdu[] }> {
  const h = await FakeConnection.open({ params });
  const { itt } = h.command({ read: true, edtl });
  await h.settle();
  const c = h.lun.take();
  expect(c.read).toBe(true);
  expect(c.expectedLength).toBe(edtl);
  const data = pattern(completion.bytes, edtl);
  h.lun.complete(c, { status: completion.status, sense: completion.sense, dataIn: data });
  return { h, itt, data, out: await h.take() };
}

describe('Data-In sequencing', () => {
  it('cuts at MaxRecvDataSegmentLength, closes each MaxBurstLength sequence with F, status in the last PDU', async () => {
    const edtl = 5 * 4096 + 100;
    const statSN = 0x1000;
    const { h, itt, data, out } = await read(
      { InitiatorMaxRecvDataSegmentLength: 4096, MaxBurstLength: 8192 },
      edtl,
      { bytes: edtl },
    );
    expect(out.every((p) => p.opcode === Opcode.DATA_IN)).toBe(true);
    expect(shape(out)).toEqual([
      [0, 4096, false, false, 0],
      [4096, 4096, true, false, 1],
      [8192, 4096, false, false, 2],
      [12288, 4096, true, false, 3],
      [16384, 4096, false, false, 4],
      [20480, 100, true, true, 5],
    ]);
    for (const p of out) {
      expect(p.itt).toBe(itt);
      expect(p.ttt).toBe(RESERVED_TAG);
      expect(p.expCmdSN).toBe(h.cmdSN);
    }
    // StatSN only in the PDU with status (11.7.6), and the residual fields with it.
    expect(out.slice(0, 5).map((p) => p.statSN)).toEqual([0, 0, 0, 0, 0]);
    const last = out[5]!;
    expect([last.statSN, last.status, last.underflow, last.overflow, last.residual]).toEqual([
      statSN,
      GOOD,
      false,
      false,
      0,
    ]);
    expect(Buffer.concat(out.map((p) => p.data)).equals(data)).toBe(true);
    expect(h.conn.statSN).toBe(statSN + 1);
    await h.settle();
    expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
    await h.close();
  });

  it('a burst that is not a multiple of the PDU size: the PDU at the end of each burst is short', async () => {
    const { h, out } = await read({ InitiatorMaxRecvDataSegmentLength: 4096, MaxBurstLength: 6000 }, 13000, {
      bytes: 13000,
    });
    expect(shape(out)).toEqual([
      [0, 4096, false, false, 0],
      [4096, 1904, true, false, 1],
      [6000, 4096, false, false, 2],
      [10096, 1904, true, false, 3],
      [12000, 1000, true, true, 4],
    ]);
    await h.close();
  });

  it('with sense data: Data-In without status, then a SCSI Response with the sense and ExpDataSN', async () => {
    const { h, itt, data, out } = await read({ InitiatorMaxRecvDataSegmentLength: 4096 }, 8192, {
      status: CHECK_CONDITION,
      sense: 'INVALID_FIELD_IN_CDB',
      bytes: 6000,
    });
    expect(out.map((p) => p.opcode)).toEqual([Opcode.DATA_IN, Opcode.DATA_IN, Opcode.SCSI_RESPONSE]);
    expect(shape(out.slice(0, 2))).toEqual([
      [0, 4096, false, false, 0],
      [4096, 1904, true, false, 1],
    ]);
    expect(Buffer.concat(out.slice(0, 2).map((p) => p.data)).equals(data)).toBe(true);
    const rsp = out[2]!;
    expect([rsp.itt, rsp.status, rsp.response, rsp.expDataSN, rsp.statSN]).toEqual([
      itt,
      CHECK_CONDITION,
      0,
      2,
      0x1000,
    ]);
    expect([rsp.underflow, rsp.residual]).toEqual([true, 8192 - 6000]);
    expect(rsp.sense.length).toBe(18);
    expect([rsp.sense[2]! & 0x0f, rsp.sense[12], rsp.sense[13]]).toEqual([0x05, 0x24, 0x00]); // ILLEGAL REQUEST, 24/00
    await h.close();
  });

  it('CONDITION MET without sense still rides in the last Data-In', async () => {
    const { h, out } = await read({}, 512, { status: CONDITION_MET, bytes: 512 });
    expect(out).toHaveLength(1);
    expect([out[0]!.hasStatus, out[0]!.status]).toEqual([true, CONDITION_MET]);
    await h.close();
  });

  it('any other status goes in a SCSI Response even without sense (11.7.4: S only for good status)', async () => {
    const { h, out } = await read({}, 1024, { status: BUSY, bytes: 1024 });
    expect(out.map((p) => [p.opcode, p.hasStatus])).toEqual([
      [Opcode.DATA_IN, false],
      [Opcode.SCSI_RESPONSE, false],
    ]);
    expect([out[1]!.status, out[1]!.data.length, out[1]!.expDataSN]).toEqual([BUSY, 0, 1]);
    await h.close();
  });

  it('no data returned: a SCSI Response alone', async () => {
    const { h, out } = await read({}, 4096, { bytes: 0 });
    expect(out.map((p) => p.opcode)).toEqual([Opcode.SCSI_RESPONSE]);
    expect([out[0]!.status, out[0]!.expDataSN, out[0]!.underflow, out[0]!.residual]).toEqual([
      GOOD,
      0,
      true,
      4096,
    ]);
    await h.close();
  });

  it('with both digests: every PDU digested, odd lengths padded', async () => {
    const { h, data, out } = await read(
      { HeaderDigest: 'CRC32C', DataDigest: 'CRC32C', InitiatorMaxRecvDataSegmentLength: 1000 },
      2501,
      { bytes: 2501 },
    );
    // The decoder has checked each header and data digest and that padding is zero.
    expect(shape(out)).toEqual([
      [0, 1000, false, false, 0],
      [1000, 1000, false, false, 1],
      [2000, 501, true, true, 2],
    ]);
    expect(Buffer.concat(out.map((p) => p.data)).equals(data)).toBe(true);
    await h.close();
  });

  it('StatSN counts status-carrying PDUs only, across commands', async () => {
    const h = await FakeConnection.open({ statSN: 0xfffffffe, params: { ImmediateData: false } });
    h.command({ read: true, edtl: 512 });
    h.command({ write: true, edtl: 512 });
    const r2t = await h.takeOne(); // the write's R2T carries StatSN without consuming it
    expect([r2t.opcode, r2t.statSN]).toEqual([Opcode.R2T, 0xfffffffe]);
    const rd = h.lun.pending()[0]!;
    h.lun.complete(rd, { dataIn: Buffer.alloc(512) });
    h.command({ edtl: 0 }); // TEST UNIT READY
    await h.settle();
    const tur = h.lun.pending()[0]!;
    h.lun.complete(tur);
    const out = await h.take();
    expect(out.map((p) => [p.opcode, p.statSN])).toEqual([
      [Opcode.DATA_IN, 0xfffffffe],
      [Opcode.SCSI_RESPONSE, 0xffffffff],
    ]);
    const ping = h.ping();
    const nopIn = await h.takeOne();
    expect([nopIn.itt, nopIn.statSN]).toEqual([ping, 0]); // wraps (serial arithmetic)
    await h.close();
  });
});

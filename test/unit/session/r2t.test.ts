/**
 * Write data flow (RFC 7143 10.7, 10.8, 11.8, 13.10-13.17) through a real connection on
 * a fake socket: the unsolicited burst (ImmediateData, InitialR2T, FirstBurstLength),
 * then R2Ts of at most MaxBurstLength, at most MaxOutstandingR2T at a time, in offset
 * order, until every byte is in; only then does the command reach the LUN worker, with
 * exactly the bytes sent.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Opcode, RESERVED_TAG } from '../../../src/shared/iscsi/pdu.ts';
import type { SessionParams } from '../../../src/shared/iscsi/session-params.ts';
import { FakeConnection } from '../../helpers/fake-connection.ts';
import type { WirePdu } from '../../helpers/pdu-stream.ts';

const KiB = 1024;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 13 + (i >>> 8)) & 0xff;
  return b;
}

function r2ts(pdus: WirePdu[]): Array<{ sn: number; offset: number; length: number }> {
  return pdus.map((p) => {
    expect(p.opcode).toBe(Opcode.R2T);
    return { sn: p.r2tSN, offset: p.bufferOffset, length: p.desiredLength };
  });
}

async function open(params: Partial<SessionParams>): Promise<FakeConnection> {
  return FakeConnection.open({ params, tuning: { maxTransferLength: 4 * 1024 * KiB } });
}

describe('R2T sizing', () => {
  it('InitialR2T=Yes, ImmediateData=No: MaxBurstLength bursts, MaxOutstandingR2T at a time, the last one short', async () => {
    const h = await open({
      InitialR2T: true,
      ImmediateData: false,
      MaxBurstLength: 16 * KiB,
      TargetMaxRecvDataSegmentLength: 8 * KiB,
      MaxOutstandingR2T: 2,
    });
    const edtl = 40 * KiB;
    const data = pattern(edtl, 1);
    const statSN = h.conn.statSN;
    const { itt, cmdSN } = h.command({ write: true, edtl, lun: 0 });
    const first = await h.take();
    expect(r2ts(first)).toEqual([
      { sn: 0, offset: 0, length: 16 * KiB },
      { sn: 1, offset: 16 * KiB, length: 16 * KiB },
    ]);
    const ttt = first[0]!.ttt;
    for (const p of first) {
      expect(p.itt).toBe(itt);
      expect(p.ttt).toBe(ttt);
      expect(p.final).toBe(true);
      expect(p.bhs.subarray(8, 16)).toEqual(Buffer.alloc(8)); // LUN 0 echoed
      // R2T carries StatSN without consuming it (RFC 7143 11.8.3).
      expect(p.statSN).toBe(statSN);
      expect(p.expCmdSN).toBe(cmdSN + 1);
    }
    expect(ttt).not.toBe(RESERVED_TAG);

    h.dataSequence(itt, ttt, data, 0, 16 * KiB);
    expect(r2ts(await h.take())).toEqual([{ sn: 2, offset: 32 * KiB, length: 8 * KiB }]);
    h.dataSequence(itt, ttt, data, 16 * KiB, 16 * KiB);
    expect(await h.take()).toEqual([]);
    expect(h.lun.pending()).toEqual([]); // not before every byte is in
    h.dataSequence(itt, ttt, data, 32 * KiB, 8 * KiB);
    await h.settle();

    const c = h.lun.take();
    expect(c.write).toBe(true);
    expect(c.expectedLength).toBe(edtl);
    expect(c.dataOutLength).toBe(edtl);
    expect(c.data.equals(data)).toBe(true);
    h.lun.complete(c);
    const rsp = await h.takeOne();
    expect(rsp.opcode).toBe(Opcode.SCSI_RESPONSE);
    expect([rsp.itt, rsp.status, rsp.statSN, rsp.underflow, rsp.overflow]).toEqual([
      itt,
      0,
      statSN,
      false,
      false,
    ]);
    expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
    await h.close();
  });

  it('MaxOutstandingR2T=1: the next R2T only once the previous burst ended', async () => {
    const h = await open({ ImmediateData: false, MaxBurstLength: 8 * KiB, MaxOutstandingR2T: 1 });
    const data = pattern(24 * KiB, 2);
    const { itt } = h.command({ write: true, edtl: data.length });
    const seen: Array<{ sn: number; offset: number; length: number }> = [];
    for (let burst = 0; burst < 3; burst++) {
      const pdus = await h.take();
      expect(pdus).toHaveLength(1);
      seen.push(...r2ts(pdus));
      const ttt = pdus[0]!.ttt;
      // Half the burst: no new R2T yet.
      h.dataOut({
        itt,
        ttt,
        offset: burst * 8 * KiB,
        data: data.subarray(burst * 8 * KiB, burst * 8 * KiB + 4 * KiB),
        dataSN: 0,
        final: false,
      });
      expect(await h.take()).toEqual([]);
      h.dataOut({
        itt,
        ttt,
        offset: burst * 8 * KiB + 4 * KiB,
        data: data.subarray(burst * 8 * KiB + 4 * KiB, (burst + 1) * 8 * KiB),
        dataSN: 1,
      });
    }
    expect(seen).toEqual([
      { sn: 0, offset: 0, length: 8 * KiB },
      { sn: 1, offset: 8 * KiB, length: 8 * KiB },
      { sn: 2, offset: 16 * KiB, length: 8 * KiB },
    ]);
    await h.settle();
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('ImmediateData=Yes, InitialR2T=Yes: R2Ts start where the immediate data ends', async () => {
    const h = await open({
      ImmediateData: true,
      InitialR2T: true,
      FirstBurstLength: 64 * KiB,
      MaxBurstLength: 256 * KiB,
    });
    const data = pattern(20000, 3);
    const { itt } = h.command({ write: true, edtl: data.length, data: data.subarray(0, 6000) });
    const r2t = (await h.take())[0]!;
    expect(r2ts([r2t])).toEqual([{ sn: 0, offset: 6000, length: 14000 }]);
    h.dataSequence(itt, r2t.ttt, data, 6000, 14000);
    await h.settle();
    const c = h.lun.take();
    expect(c.dataOutLength).toBe(20000);
    expect(c.data.equals(data)).toBe(true);
    await h.close();
  });

  it('a write entirely in the immediate data goes to the LU without any R2T', async () => {
    const h = await open({ ImmediateData: true, InitialR2T: true, FirstBurstLength: 64 * KiB });
    const data = pattern(4096, 4);
    h.command({ write: true, edtl: 4096, data });
    expect(await h.take()).toEqual([]);
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('InitialR2T=No, ImmediateData=Yes: immediate + unsolicited Data-Out up to FirstBurstLength, then R2Ts from there', async () => {
    const h = await open({
      ImmediateData: true,
      InitialR2T: false,
      FirstBurstLength: 16 * KiB,
      MaxBurstLength: 16 * KiB,
      TargetMaxRecvDataSegmentLength: 8 * KiB,
      MaxOutstandingR2T: 4,
    });
    const data = pattern(48 * KiB, 5);
    const { itt } = h.command({
      write: true,
      edtl: data.length,
      final: false,
      data: data.subarray(0, 8 * KiB),
    });
    // The unsolicited burst is open: no R2T for data the initiator is sending unasked.
    expect(await h.take()).toEqual([]);
    h.dataOut({ itt, offset: 8 * KiB, data: data.subarray(8 * KiB, 16 * KiB), dataSN: 0, final: true });
    const got = await h.take();
    expect(r2ts(got)).toEqual([
      { sn: 0, offset: 16 * KiB, length: 16 * KiB },
      { sn: 1, offset: 32 * KiB, length: 16 * KiB },
    ]);
    h.dataSequence(itt, got[0]!.ttt, data, 16 * KiB, 16 * KiB);
    h.dataSequence(itt, got[0]!.ttt, data, 32 * KiB, 16 * KiB);
    await h.settle();
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('InitialR2T=No, ImmediateData=No: Data-Out only, the R2Ts solicit what follows FirstBurstLength', async () => {
    const h = await open({
      ImmediateData: false,
      InitialR2T: false,
      FirstBurstLength: 8 * KiB,
      MaxBurstLength: 32 * KiB,
    });
    const data = pattern(20 * KiB, 6);
    const { itt } = h.command({ write: true, edtl: data.length, final: false });
    expect(await h.take()).toEqual([]);
    h.dataSequence(itt, RESERVED_TAG, data, 0, 8 * KiB, 4 * KiB);
    const got = await h.take();
    expect(r2ts(got)).toEqual([{ sn: 0, offset: 8 * KiB, length: 12 * KiB }]);
    h.dataSequence(itt, got[0]!.ttt, data, 8 * KiB, 12 * KiB);
    await h.settle();
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('InitialR2T=No but the command has F set: no unsolicited Data-Out follows, R2Ts start at once', async () => {
    const h = await open({ ImmediateData: true, InitialR2T: false, FirstBurstLength: 64 * KiB });
    const data = pattern(12 * KiB, 7);
    const { itt } = h.command({
      write: true,
      edtl: data.length,
      final: true,
      data: data.subarray(0, 2 * KiB),
    });
    const got = await h.take();
    expect(r2ts(got)).toEqual([{ sn: 0, offset: 2 * KiB, length: 10 * KiB }]);
    h.dataSequence(itt, got[0]!.ttt, data, 2 * KiB, 10 * KiB);
    await h.settle();
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('an unsolicited burst ended early with F: R2Ts solicit from where it ended', async () => {
    const h = await open({
      ImmediateData: false,
      InitialR2T: false,
      FirstBurstLength: 16 * KiB,
      MaxBurstLength: 64 * KiB,
    });
    const data = pattern(32 * KiB, 8);
    const { itt } = h.command({ write: true, edtl: data.length, final: false });
    h.dataOut({ itt, offset: 0, data: data.subarray(0, 4 * KiB), final: true });
    const got = await h.take();
    expect(r2ts(got)).toEqual([{ sn: 0, offset: 4 * KiB, length: 28 * KiB }]);
    await h.close();
  });

  it('a write that fits in FirstBurstLength with InitialR2T=No needs no R2T at all', async () => {
    const h = await open({ ImmediateData: true, InitialR2T: false, FirstBurstLength: 64 * KiB });
    const data = pattern(24 * KiB, 9);
    const { itt } = h.command({
      write: true,
      edtl: data.length,
      final: false,
      data: data.subarray(0, 8 * KiB),
    });
    h.dataSequence(itt, RESERVED_TAG, data, 8 * KiB, 16 * KiB);
    expect(await h.take()).toEqual([]);
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('every mix of the keys: R2Ts cover exactly the rest of the write, in order, within the limits', async () => {
    const settings = fc.record({
      ImmediateData: fc.boolean(),
      InitialR2T: fc.boolean(),
      TargetMaxRecvDataSegmentLength: fc.constantFrom(512, 4096, 8192, 6000),
      MaxBurstLength: fc.constantFrom(512, 4096, 16384, 65536, 10000),
      firstBurstRatio: fc.integer({ min: 1, max: 4 }),
      MaxOutstandingR2T: fc.integer({ min: 1, max: 6 }),
      edtl: fc.integer({ min: 1, max: 200 * KiB }),
      immediateShare: fc.double({ min: 0, max: 1, noNaN: true }),
      sendUnsolicited: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(settings, async (s) => {
        // FirstBurstLength <= MaxBurstLength (RFC 7143 13.14).
        const FirstBurstLength = Math.max(512, Math.floor(s.MaxBurstLength / s.firstBurstRatio));
        const h = await open({ ...s, FirstBurstLength });
        try {
          await writeLikeAnInitiator(h, s.edtl, s.immediateShare, s.sendUnsolicited, h.params);
        } finally {
          await h.close();
        }
      }),
      { seed: 0x2a7_0001, numRuns: 120 },
    );
  });
});

/**
 * A correct initiator: immediate data and the unsolicited burst as the keys allow, then
 * the burst of the oldest outstanding R2T, checking every R2T against the rules.
 */
async function writeLikeAnInitiator(
  h: FakeConnection,
  edtl: number,
  immediateShare: number,
  sendUnsolicited: boolean,
  p: SessionParams,
): Promise<void> {
  const data = pattern(edtl, edtl & 0xff);
  const mrdsl = p.TargetMaxRecvDataSegmentLength;
  const firstBurst = Math.min(p.FirstBurstLength, edtl);
  const immediate = p.ImmediateData ? Math.min(Math.floor(firstBurst * immediateShare), mrdsl) : 0;
  const unsolicited = !p.InitialR2T && sendUnsolicited && immediate < edtl;
  const { itt } = h.command({
    write: true,
    edtl,
    final: !unsolicited,
    data: immediate > 0 ? data.subarray(0, immediate) : undefined,
  });
  let sent = immediate;
  if (unsolicited) {
    h.dataSequence(itt, RESERVED_TAG, data, immediate, firstBurst - immediate);
    sent = firstBurst;
  }
  const outstanding: Array<{ sn: number; offset: number; length: number; ttt: number }> = [];
  let nextSN = 0;
  let solicitedEnd = sent;
  for (let guard = 0; guard < 10000; guard++) {
    for (const r of await h.take()) {
      expect(r.opcode).toBe(Opcode.R2T);
      expect(r.itt).toBe(itt);
      // In offset order, contiguous, from where the unsolicited data ended.
      expect(r.r2tSN).toBe(nextSN++);
      expect(r.bufferOffset).toBe(solicitedEnd);
      expect(r.desiredLength).toBeGreaterThan(0);
      expect(r.desiredLength).toBeLessThanOrEqual(p.MaxBurstLength);
      // Only the last burst may be shorter than MaxBurstLength.
      if (r.bufferOffset + r.desiredLength < edtl) expect(r.desiredLength).toBe(p.MaxBurstLength);
      solicitedEnd += r.desiredLength;
      outstanding.push({ sn: r.r2tSN, offset: r.bufferOffset, length: r.desiredLength, ttt: r.ttt });
    }
    expect(outstanding.length).toBeLessThanOrEqual(p.MaxOutstandingR2T);
    const r = outstanding.shift();
    if (r === undefined) break;
    h.dataSequence(itt, r.ttt, data, r.offset, r.length);
  }
  expect(solicitedEnd).toBe(edtl);
  await h.settle();
  const c = h.lun.take();
  expect(c.dataOutLength).toBe(edtl);
  expect(c.data.equals(data)).toBe(true);
  h.lun.complete(c);
  expect((await h.takeOne()).opcode).toBe(Opcode.SCSI_RESPONSE);
  expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
}

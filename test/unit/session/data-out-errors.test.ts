/**
 * What a connection does with Data-Out (and other PDUs) it cannot accept. At
 * ErrorRecoveryLevel 0 there is no recovery R2T or SNACK, so anything that would let a
 * write complete with bytes the initiator never sent is a protocol error: Reject with
 * the offending header echoed (RFC 7143 11.17), then the connection is dropped after the
 * Reject is flushed (7.1.5). A wrong DataSN or a bad header digest drops it at once; a
 * Data-Out for no task is dropped silently; a wrong Target Transfer Tag is only
 * rejected.
 */
import { describe, expect, it } from 'vitest';
import { BHS_LENGTH, Opcode, RESERVED_TAG, RejectReason } from '../../../src/shared/iscsi/pdu.ts';
import type { SessionParams } from '../../../src/shared/iscsi/session-params.ts';
import { FakeConnection } from '../../helpers/fake-connection.ts';
import { dataOutBhs, nopOutBhs, scsiCommandBhs } from '../../helpers/initiator.ts';
import { framePdu, type WirePdu } from '../../helpers/pdu-stream.ts';

const KiB = 1024;

async function open(params: Partial<SessionParams> = {}): Promise<FakeConnection> {
  return FakeConnection.open({ params: { ImmediateData: false, MaxBurstLength: 16 * KiB, ...params } });
}

/** A write waiting for data; its first R2T. */
async function pendingWrite(h: FakeConnection, edtl: number): Promise<{ itt: number; r2t: WirePdu }> {
  const { itt } = h.command({ write: true, edtl });
  const r2t = await h.takeOne();
  expect(r2t.opcode).toBe(Opcode.R2T);
  return { itt, r2t };
}

/** The header as the target saw it (DataSegmentLength filled in). */
function sentHeader(bhs: Buffer, data: Buffer): Buffer {
  return framePdu(bhs, data).subarray(0, BHS_LENGTH);
}

function expectReject(p: WirePdu, reason: number, header: Buffer): void {
  expect(p.opcode).toBe(Opcode.REJECT);
  expect(p.rejectReason).toBe(reason);
  expect(p.itt).toBe(RESERVED_TAG);
  expect(p.data).toEqual(header);
}

/** Dropped after the Reject: input stopped, FIN after the queued PDUs, state freed. */
function expectAborted(h: FakeConnection): void {
  expect(h.closed).toBe(true);
  expect(h.socket.writableEnded).toBe(true);
  expect(h.socket.destroyed).toBe(false);
  expect(h.lun.pending()).toEqual([]);
  expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
}

describe('Data-Out sequence errors: Reject (protocol error), then the connection is dropped', () => {
  it('a Data-Out that leaves a gap', async () => {
    const h = await open();
    const { itt, r2t } = await pendingWrite(h, 8 * KiB);
    const bhs = dataOutBhs({ itt, ttt: r2t.ttt, bufferOffset: 4096, dataSN: 0 });
    const data = Buffer.alloc(4096);
    // A ping in the same chunk after it: nothing more is read.
    h.socket.deliver(Buffer.concat([framePdu(bhs, data), framePdu(nopOutBhs({ immediate: true, itt: 1 }))]));
    const out = await h.take();
    expect(out).toHaveLength(1);
    expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, data));
    expectAborted(h);
    expect(h.warnings()).toContain('Data-Out outside the expected sequence: dropping connection');
  });

  it('a Data-Out running past what its R2T solicited', async () => {
    const h = await open({ MaxBurstLength: 8 * KiB, TargetMaxRecvDataSegmentLength: 16 * KiB });
    const { itt, r2t } = await pendingWrite(h, 32 * KiB);
    expect(r2t.desiredLength).toBe(8 * KiB);
    const bhs = dataOutBhs({ itt, ttt: r2t.ttt, bufferOffset: 0, dataSN: 0, final: true });
    const data = Buffer.alloc(8 * KiB + 512);
    h.send(bhs, data);
    const out = await h.take();
    expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, data));
    expectAborted(h);
  });

  it('a solicited burst exceeding its R2T in PDUs within the size limit', async () => {
    const h = await open({ MaxBurstLength: 8 * KiB, TargetMaxRecvDataSegmentLength: 4 * KiB });
    const { itt, r2t } = await pendingWrite(h, 32 * KiB);
    h.dataOut({ itt, ttt: r2t.ttt, offset: 0, data: Buffer.alloc(4 * KiB), dataSN: 0, final: false });
    h.dataOut({ itt, ttt: r2t.ttt, offset: 4 * KiB, data: Buffer.alloc(4 * KiB), dataSN: 1, final: false });
    const bhs = dataOutBhs({ itt, ttt: r2t.ttt, bufferOffset: 8 * KiB, dataSN: 2 });
    h.send(bhs, Buffer.alloc(512));
    const out = await h.take();
    expect(out).toHaveLength(1);
    expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, Buffer.alloc(512)));
    expectAborted(h);
  });

  it('F before the end of an R2T burst', async () => {
    const h = await open({ MaxBurstLength: 16 * KiB });
    const { itt, r2t } = await pendingWrite(h, 32 * KiB);
    const bhs = dataOutBhs({ itt, ttt: r2t.ttt, bufferOffset: 0, dataSN: 0, final: true });
    h.send(bhs, Buffer.alloc(4 * KiB));
    const out = await h.take();
    expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, Buffer.alloc(4 * KiB)));
    expectAborted(h);
  });

  it('unsolicited Data-Out when InitialR2T=Yes', async () => {
    const h = await open({ InitialR2T: true });
    const { itt } = await pendingWrite(h, 8 * KiB);
    const bhs = dataOutBhs({ itt, ttt: RESERVED_TAG, bufferOffset: 0, dataSN: 0 });
    h.send(bhs, Buffer.alloc(4 * KiB));
    const out = await h.take();
    expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, Buffer.alloc(4 * KiB)));
    expectAborted(h);
  });

  it('unsolicited Data-Out beyond FirstBurstLength', async () => {
    const h = await open({ InitialR2T: false, FirstBurstLength: 8 * KiB, MaxBurstLength: 64 * KiB });
    const { itt } = h.command({ write: true, edtl: 32 * KiB, final: false });
    h.dataOut({ itt, offset: 0, data: Buffer.alloc(8 * KiB), dataSN: 0, final: false });
    const bhs = dataOutBhs({ itt, ttt: RESERVED_TAG, bufferOffset: 8 * KiB, dataSN: 1 });
    h.send(bhs, Buffer.alloc(4 * KiB));
    const out = await h.take();
    // The full burst without F was tolerated and the rest solicited; the extra PDU is not.
    expect(out.map((p) => p.opcode)).toEqual([Opcode.R2T, Opcode.REJECT]);
    expect(out[0]!.bufferOffset).toBe(8 * KiB);
    expectReject(out[1]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, Buffer.alloc(4 * KiB)));
    expectAborted(h);
  });

  it('a Data-Out for a write whose data all came as immediate data', async () => {
    const h = await open({ ImmediateData: true, InitialR2T: false, FirstBurstLength: 64 * KiB });
    h.command({ write: true, edtl: 4 * KiB, final: false, data: Buffer.alloc(4 * KiB), cmdSN: 1, itt: 0x77 });
    await h.settle();
    expect(h.lun.pending()).toHaveLength(1); // complete at once: nothing more is expected
    h.dataOut({ itt: 0x77, offset: 4 * KiB, data: Buffer.alloc(512) });
    // The task is at the LU, not receiving: the stray PDU is dropped silently.
    expect(await h.take()).toEqual([]);
    expect(h.closed).toBe(false);
    await h.close();
  });
});

describe('Data-Out errors that only reject, or drop silently', () => {
  it('a wrong Target Transfer Tag is rejected (invalid PDU field); the write goes on', async () => {
    const h = await open();
    const { itt, r2t } = await pendingWrite(h, 4 * KiB);
    const bhs = dataOutBhs({ itt, ttt: (r2t.ttt ^ 0x10000) >>> 0, bufferOffset: 0, dataSN: 0 });
    const data = Buffer.alloc(4 * KiB, 3);
    h.send(bhs, data);
    const out = await h.take();
    expect(out).toHaveLength(1);
    expectReject(out[0]!, RejectReason.INVALID_PDU_FIELD, sentHeader(bhs, data));
    expect(h.closed).toBe(false);
    h.dataOut({ itt, ttt: r2t.ttt, offset: 0, data });
    await h.settle();
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('a Data-Out for no task is read and dropped; the connection goes on', async () => {
    const h = await open();
    h.dataOut({ itt: 0xabc, ttt: 0x1234, offset: 0, data: Buffer.alloc(1000, 9) });
    const ping = h.ping();
    const out = await h.take();
    expect(out.map((p) => [p.opcode, p.itt])).toEqual([[Opcode.NOP_IN, ping]]);
    await h.close();
  });
});

describe('DataSN and digests', () => {
  it('a wrong DataSN drops the connection at once, without a Reject (RFC 7143 11.7.5)', async () => {
    const h = await open({ TargetMaxRecvDataSegmentLength: 4 * KiB });
    const { itt, r2t } = await pendingWrite(h, 8 * KiB);
    h.dataOut({ itt, ttt: r2t.ttt, offset: 0, data: Buffer.alloc(4 * KiB), dataSN: 0, final: false });
    h.dataOut({ itt, ttt: r2t.ttt, offset: 4 * KiB, data: Buffer.alloc(4 * KiB), dataSN: 2 });
    expect(await h.take()).toEqual([]);
    expect(h.closed).toBe(true);
    expect(h.socket.destroyed).toBe(true);
    expect(h.leftovers.tasks).toBe(0);
  });

  it('a data digest error on Data-Out: Reject (data digest error), then dropped: the bytes are lost', async () => {
    const h = await open({ DataDigest: 'CRC32C', HeaderDigest: 'CRC32C' });
    const { itt, r2t } = await pendingWrite(h, 4 * KiB);
    const bhs = dataOutBhs({ itt, ttt: r2t.ttt, bufferOffset: 0, dataSN: 0 });
    const data = Buffer.alloc(4 * KiB, 1);
    h.send(bhs, data, { corruptDataDigest: true });
    const out = await h.take();
    expectReject(out[0]!, RejectReason.DATA_DIGEST_ERROR, sentHeader(bhs, data));
    expectAborted(h);
  });

  it('a data digest error on immediate data also drops the connection', async () => {
    const h = await open({ DataDigest: 'CRC32C', ImmediateData: true });
    const bhs = scsiCommandBhs({
      write: true,
      edtl: 4096,
      cmdSN: 1,
      itt: 5,
      cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0]),
    });
    const data = Buffer.alloc(4096, 2);
    h.send(bhs, data, { corruptDataDigest: true });
    const out = await h.take();
    expectReject(out[0]!, RejectReason.DATA_DIGEST_ERROR, sentHeader(bhs, data));
    expectAborted(h);
  });

  it('a data digest error on a NOP-Out is rejected and the connection goes on', async () => {
    const h = await open({ DataDigest: 'CRC32C' });
    const bhs = nopOutBhs({ immediate: true, itt: 0x42, cmdSN: 1 });
    h.send(bhs, Buffer.from('ping'), { corruptDataDigest: true });
    const out = await h.take();
    expectReject(out[0]!, RejectReason.DATA_DIGEST_ERROR, sentHeader(bhs, Buffer.from('ping')));
    expect(h.closed).toBe(false);
    const ping = h.ping();
    expect((await h.takeOne()).itt).toBe(ping);
    await h.close();
  });

  it('a header digest error drops the connection at once: no Reject, nothing more read', async () => {
    const h = await open({ HeaderDigest: 'CRC32C' });
    const { r2t } = await pendingWrite(h, 4 * KiB);
    expect(r2t.opcode).toBe(Opcode.R2T);
    h.socket.deliver(
      Buffer.concat([
        framePdu(nopOutBhs({ immediate: true, itt: 1 }), undefined, {
          headerDigest: true,
          corruptHeaderDigest: true,
        }),
        framePdu(nopOutBhs({ immediate: true, itt: 2 }), undefined, { headerDigest: true }),
      ]),
    );
    expect(await h.take()).toEqual([]);
    expect(h.closed).toBe(true);
    expect(h.socket.destroyed).toBe(true);
    expect(h.leftovers.tasks).toBe(0);
  });
});

describe('data segments the target does not accept', () => {
  it('longer than MaxRecvDataSegmentLength: Reject (protocol error), then dropped', async () => {
    const h = await open({
      TargetMaxRecvDataSegmentLength: 8 * KiB,
      ImmediateData: true,
      FirstBurstLength: 64 * KiB,
    });
    const bhs = scsiCommandBhs({
      write: true,
      edtl: 16 * KiB,
      cmdSN: 1,
      itt: 9,
      cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 32, 0]),
    });
    const data = Buffer.alloc(8 * KiB + 4);
    h.send(bhs, data);
    const out = await h.take();
    expect(out).toHaveLength(1);
    expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, data));
    expectAborted(h);
  });

  it.each([
    ['immediate data with ImmediateData=No', { ImmediateData: false }, 4096, 8192],
    ['immediate data over FirstBurstLength', { ImmediateData: true, FirstBurstLength: 4096 }, 8192, 8192],
    ['immediate data over EDTL', { ImmediateData: true }, 1024, 512],
  ])(
    '%s: rejected (protocol error), not executed, the connection goes on',
    async (_name, params, dsl, edtl) => {
      const h = await open(params);
      const bhs = scsiCommandBhs({
        write: true,
        edtl,
        cmdSN: 1,
        itt: 3,
        cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
      });
      const data = Buffer.alloc(dsl, 4);
      h.send(bhs, data);
      const out = await h.take();
      expect(out).toHaveLength(1);
      expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, data));
      expect(h.lun.pending()).toEqual([]);
      expect(h.closed).toBe(false);
      await h.settle();
      expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
      await h.close();
    },
  );

  it('an ITT already in use: Reject (task in progress), the first command unharmed', async () => {
    const h = await open();
    h.command({ read: true, edtl: 512, itt: 0x99 });
    const bhs = scsiCommandBhs({
      read: true,
      edtl: 512,
      cmdSN: h.cmdSN,
      itt: 0x99,
      cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
    });
    h.send(bhs);
    const out = await h.take();
    expectReject(out[0]!, RejectReason.TASK_IN_PROGRESS, sentHeader(bhs, Buffer.alloc(0)));
    expect(h.lun.pending()).toHaveLength(1);
    await h.close();
  });
});

describe('out-of-order Data-Out (DataPDUInOrder=No)', () => {
  it('takes the PDUs of a burst in any order and writes the right bytes', async () => {
    const h = await open({
      DataPDUInOrder: false,
      DataSequenceInOrder: true,
      TargetMaxRecvDataSegmentLength: 4 * KiB,
    });
    const { itt, r2t } = await pendingWrite(h, 16 * KiB);
    const data = Buffer.alloc(16 * KiB);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    for (const [i, sn] of [
      [3, 0],
      [1, 1],
      [0, 2],
      [2, 3],
    ] as const) {
      h.dataOut({
        itt,
        ttt: r2t.ttt,
        offset: i * 4 * KiB,
        data: data.subarray(i * 4 * KiB, (i + 1) * 4 * KiB),
        dataSN: sn,
        final: sn === 3,
      });
    }
    await h.settle();
    expect(h.lun.take().data.equals(data)).toBe(true);
    await h.close();
  });

  it('the same bytes twice (an overlay) are rejected and the connection dropped', async () => {
    const h = await open({ DataPDUInOrder: false, TargetMaxRecvDataSegmentLength: 4 * KiB });
    const { itt, r2t } = await pendingWrite(h, 16 * KiB);
    h.dataOut({ itt, ttt: r2t.ttt, offset: 4 * KiB, data: Buffer.alloc(4 * KiB), dataSN: 0, final: false });
    const bhs = dataOutBhs({ itt, ttt: r2t.ttt, bufferOffset: 6 * KiB, dataSN: 1 });
    h.send(bhs, Buffer.alloc(4 * KiB));
    const out = await h.take();
    expectReject(out[0]!, RejectReason.PROTOCOL_ERROR, sentHeader(bhs, Buffer.alloc(4 * KiB)));
    expectAborted(h);
  });
});

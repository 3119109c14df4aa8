/**
 * Command numbering (RFC 7143 3.2.2.1, 4.2.2.1): ExpCmdSN advances over CmdSNs actually
 * received, MaxCmdSN opens as commands complete and never goes back, non-immediate
 * commands outside [ExpCmdSN, MaxCmdSN] (or repeating a CmdSN) are dropped silently,
 * immediate commands are taken whatever the window and do not advance it, and commands
 * reach the SCSI layer in CmdSN order: one that arrives ahead of a gap waits for it.
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../../../src/shared/iscsi/pdu.ts';
import { FakeConnection } from '../../helpers/fake-connection.ts';
import { nopOutBhs } from '../../helpers/initiator.ts';

/** A TEST UNIT READY whose CDB carries a marker (byte 5, CONTROL) to tell commands apart at the LU. */
function tur(marker: number): Buffer {
  const c = Buffer.alloc(6);
  c[5] = marker;
  return c;
}

/** ExpCmdSN and MaxCmdSN as a NOP-In answering an immediate ping shows them. */
async function window(h: FakeConnection): Promise<[number, number]> {
  const itt = h.ping();
  const p = await h.takeOne();
  expect([p.opcode, p.itt]).toEqual([Opcode.NOP_IN, itt]);
  return [p.expCmdSN, p.maxCmdSN];
}

const markers = (h: FakeConnection): number[] => h.lun.pending().map((c) => c.cdb[5]!);

describe('CmdSN window', () => {
  it('opens at the login CmdSN with cmdWindow slots, closes as commands arrive and opens as they complete', async () => {
    const h = await FakeConnection.open({ cmdWindow: 4, firstCmdSN: 100 });
    expect(await window(h)).toEqual([100, 103]);
    for (let i = 0; i < 4; i++) h.command({ cdb: tur(i) });
    await h.settle();
    expect(markers(h)).toEqual([0, 1, 2, 3]);
    // Four outstanding: ExpCmdSN moved past them, MaxCmdSN stays (the window is full).
    expect(await window(h)).toEqual([104, 103]);

    // Beyond MaxCmdSN: dropped, no response, ExpCmdSN unchanged.
    h.command({ cdb: tur(9), cmdSN: 104 });
    await h.settle();
    expect(markers(h)).toEqual([0, 1, 2, 3]);
    expect(await window(h)).toEqual([104, 103]);

    h.lun.complete(h.lun.take());
    const rsp = await h.takeOne();
    expect([rsp.opcode, rsp.expCmdSN, rsp.maxCmdSN]).toEqual([Opcode.SCSI_RESPONSE, 104, 104]);
    h.command({ cdb: tur(4), cmdSN: 104 });
    await h.settle();
    expect(markers(h)).toEqual([1, 2, 3, 4]);
    expect(await window(h)).toEqual([105, 104]);
    await h.close();
  });

  it('drops a command below ExpCmdSN and a repeated CmdSN without a word', async () => {
    const h = await FakeConnection.open({ cmdWindow: 8, firstCmdSN: 10 });
    h.command({ cdb: tur(1), cmdSN: 10 });
    h.command({ cdb: tur(2), cmdSN: 9 }); // below ExpCmdSN
    h.command({ cdb: tur(3), cmdSN: 10 }); // the same CmdSN again
    h.command({ cdb: tur(4), cmdSN: 12 }); // ahead of a gap at 11: held
    h.command({ cdb: tur(5), cmdSN: 12 }); // repeats a CmdSN received ahead
    await h.settle();
    expect(await h.take()).toEqual([]);
    expect(markers(h)).toEqual([1]);
    expect(await window(h)).toEqual([11, 17]);
    await h.close();
  });

  it('an immediate command is taken with the window full and does not advance ExpCmdSN', async () => {
    const h = await FakeConnection.open({ cmdWindow: 2, firstCmdSN: 1 });
    h.command({ cdb: tur(1) });
    h.command({ cdb: tur(2) });
    await h.settle();
    expect(await window(h)).toEqual([3, 2]);
    h.command({ cdb: tur(3), immediate: true, cmdSN: 3 });
    await h.settle();
    expect(markers(h)).toEqual([1, 2, 3]);
    expect(await window(h)).toEqual([3, 2]);
    // Completing it does not open the window either: it never took a slot.
    const imm = h.lun.pending()[2]!;
    h.lun.complete(imm);
    const rsp = await h.takeOne();
    expect([rsp.expCmdSN, rsp.maxCmdSN]).toEqual([3, 2]);
    await h.close();
  });

  it('commands are delivered in CmdSN order: one ahead of a gap waits until the gap is filled', async () => {
    const h = await FakeConnection.open({ cmdWindow: 8, firstCmdSN: 50 });
    h.command({ cdb: tur(2), cmdSN: 51 });
    h.command({ cdb: tur(3), cmdSN: 52 });
    await h.settle();
    expect(markers(h)).toEqual([]);
    // ExpCmdSN stays at the gap; the window does not shrink although two are outstanding.
    expect(await window(h)).toEqual([50, 57]);
    h.command({ cdb: tur(1), cmdSN: 50 });
    await h.settle();
    expect(markers(h)).toEqual([1, 2, 3]);
    expect(await window(h)).toEqual([53, 57]);
    await h.close();
  });

  it('a write held behind a gap gets its R2Ts at once but reaches the LU only in order', async () => {
    const h = await FakeConnection.open({ cmdWindow: 8, firstCmdSN: 1, params: { ImmediateData: false } });
    const { itt } = h.command({ write: true, edtl: 4096, cmdSN: 2 });
    const r2t = await h.takeOne();
    expect(r2t.opcode).toBe(Opcode.R2T);
    h.dataOut({ itt, ttt: r2t.ttt, offset: 0, data: Buffer.alloc(4096, 2) });
    await h.settle();
    expect(h.lun.pending()).toEqual([]);
    h.command({ cdb: tur(1), cmdSN: 1 });
    await h.settle();
    expect(h.lun.pending().map((c) => [c.write, c.dataOutLength])).toEqual([
      [false, 0],
      [true, 4096],
    ]);
    await h.close();
  });

  it('a non-immediate NOP-Out consumes its CmdSN and can fill the gap', async () => {
    const h = await FakeConnection.open({ cmdWindow: 8, firstCmdSN: 7 });
    h.command({ cdb: tur(8), cmdSN: 8 });
    await h.settle();
    expect(markers(h)).toEqual([]);
    h.send(nopOutBhs({ itt: h.allocItt(), cmdSN: 7 }));
    expect((await h.takeOne()).opcode).toBe(Opcode.NOP_IN);
    expect(markers(h)).toEqual([8]);
    expect((await window(h))[0]).toBe(9);
    await h.close();
  });

  it('MaxCmdSN never goes back and ExpCmdSN follows the commands, across wrap-around', async () => {
    const start = 0xfffffffa;
    const h = await FakeConnection.open({ cmdWindow: 3, firstCmdSN: start });
    let lastMax = -1;
    const seen: Array<[number, number]> = [];
    for (let i = 0; i < 12; i++) {
      h.command({ cdb: tur(i) });
      await h.settle();
      h.lun.complete(h.lun.take());
      const rsp = await h.takeOne();
      seen.push([rsp.expCmdSN, rsp.maxCmdSN]);
      if (lastMax >= 0) expect(((rsp.maxCmdSN - lastMax) | 0) >= 0).toBe(true);
      lastMax = rsp.maxCmdSN;
    }
    // After each completion the window is empty again: MaxCmdSN = ExpCmdSN + 3 - 1.
    expect(seen).toEqual(
      Array.from({ length: 12 }, (_, i) => [(start + i + 1) >>> 0, (start + i + 3) >>> 0]),
    );
    await h.close();
  });
});

/**
 * Where a complete command goes (scsi-command.ts dispatch): to its LUN worker over the
 * command ring, waiting in order when the ring is full; or answered on the session
 * worker when no logical unit is involved (REPORT LUNS, a LUN that is not mapped).
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../../../src/shared/iscsi/pdu.ts';
import { DescKind } from '../../../src/shared/ring/descriptors.ts';
import { FakeConnection } from '../../helpers/fake-connection.ts';

const CHECK_CONDITION = 0x02;

function tur(marker: number): Buffer {
  const c = Buffer.alloc(6);
  c[5] = marker;
  return c;
}

describe('command delivery', () => {
  it('carries the command to the LU: LUN, direction, task attribute, CDB, buffer', async () => {
    const h = await FakeConnection.open({ luns: [0, 5] });
    const cdb = Buffer.from([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 8, 0, 0]); // READ(16)
    h.command({ read: true, edtl: 4096, lun: 5, cdb });
    await h.settle();
    const c = h.lun.take();
    expect(c).toMatchObject({
      kind: DescKind.COMMAND,
      lun: 5,
      luIndex: 1,
      read: true,
      write: false,
      attribute: 1, // SIMPLE
      expectedLength: 4096,
      nexus: 7,
    });
    expect(c.cdb).toEqual(cdb);
    expect(c.slabOffset % 4096).toBe(0);
    await h.close();
  });

  it('a full command ring: later commands wait and go on in order as completions free slots', async () => {
    const h = await FakeConnection.open({ ringCapacity: 2, cmdWindow: 16 });
    for (let i = 0; i < 6; i++) h.command({ cdb: tur(i) });
    await h.settle();
    expect(h.lun.pending().map((c) => c.cdb[5])).toEqual([0, 1]);
    for (let i = 0; i < 6; i++) {
      const c = h.lun.take();
      expect(c.cdb[5]).toBe(i);
      h.lun.complete(c);
    }
    const out = await h.take();
    expect(out.map((p) => p.opcode)).toEqual(new Array(6).fill(Opcode.SCSI_RESPONSE));
    expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
    await h.close();
  });

  it('REPORT LUNS is answered on the session worker with the session LUN inventory', async () => {
    const h = await FakeConnection.open({ luns: [3, 0, 17] });
    const cdb = Buffer.alloc(12);
    cdb[0] = 0xa0;
    cdb.writeUInt32BE(256, 6);
    const { itt } = h.command({ read: true, edtl: 256, cdb });
    const din = (await h.take())[0]!;
    expect([din.opcode, din.itt, din.hasStatus, din.status, din.underflow, din.residual]).toEqual([
      Opcode.DATA_IN,
      itt,
      true,
      0,
      true,
      256 - 32,
    ]);
    expect(din.data.readUInt32BE(0)).toBe(24); // LUN LIST LENGTH
    expect([din.data[9], din.data[17], din.data[25]]).toEqual([0, 3, 17]);
    expect(h.lun.pending()).toEqual([]);
    await h.close();
  });

  it('a LUN that is not mapped: CHECK CONDITION, LOGICAL UNIT NOT SUPPORTED, without the LU', async () => {
    const h = await FakeConnection.open({ luns: [0] });
    h.command({ read: true, edtl: 512, lun: 9 });
    const rsp = await h.takeOne();
    expect([rsp.opcode, rsp.status]).toEqual([Opcode.SCSI_RESPONSE, CHECK_CONDITION]);
    expect([rsp.sense[2]! & 0x0f, rsp.sense[12], rsp.sense[13]]).toEqual([0x05, 0x25, 0x00]);
    expect(h.lun.pending()).toEqual([]);
    await h.close();
  });

  it('an aborted completion sends nothing and frees the task', async () => {
    const h = await FakeConnection.open();
    h.command({ read: true, edtl: 4096 });
    await h.settle();
    h.lun.complete(h.lun.take(), { aborted: true, status: 0x40 });
    expect(await h.take()).toEqual([]);
    expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
    await h.close();
  });

  it('a command completing after its connection closed is freed, not answered', async () => {
    const h = await FakeConnection.open();
    h.command({ read: true, edtl: 4096 });
    await h.settle();
    const c = h.lun.take();
    await h.close();
    expect(h.closed).toBe(true);
    expect(h.events).toContain('releaseNexus 7');
    expect(h.leftovers.tasks).toBe(1);
    h.lun.complete(c, { dataIn: Buffer.alloc(4096) });
    expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
  });
});

/**
 * No starvation by withheld write data (issue 12): a session's writes may hold at most
 * maxPendingWriteBytes of slab while their data is due (further writes get TASK SET
 * FULL, reads go on), and a write whose Data-Out stops coming ends after
 * dataOutTimeoutSec with ABORTED COMMAND, INITIATOR RESPONSE TIMEOUT, its buffer freed.
 */
import { describe, expect, it } from 'vitest';
import { Opcode } from '../../../src/shared/iscsi/pdu.ts';
import { FakeConnection, rwCdb } from '../../helpers/fake-connection.ts';

const TASK_SET_FULL = 0x28;
const CHECK_CONDITION = 0x02;
const KiB = 1024;

describe('writes waiting for data', () => {
  it('hold at most maxPendingWriteBytes per session; beyond it TASK SET FULL, reads still run', async () => {
    const h = await FakeConnection.open({
      slabBytes: 8 * 1024 * KiB,
      params: { InitialR2T: true, ImmediateData: false },
      tuning: { maxTransferLength: 256 * KiB, maxPendingWriteBytes: 512 * KiB, dataOutTimeoutSec: 0 },
    });
    // Two 256 KiB writes fill the session's allowance; their R2Ts go out, no data comes.
    h.command({ write: true, edtl: 256 * KiB, cdb: rwCdb(true, 256 * KiB) });
    h.command({ write: true, edtl: 256 * KiB, cdb: rwCdb(true, 256 * KiB) });
    const r2ts = await h.take();
    expect(r2ts.filter((p) => p.opcode === Opcode.R2T)).toHaveLength(2);
    const third = h.command({ write: true, edtl: 4 * KiB, cdb: rwCdb(true, 4 * KiB) });
    const full = await h.takeOne();
    expect([full.opcode, full.itt, full.status]).toEqual([Opcode.SCSI_RESPONSE, third.itt, TASK_SET_FULL]);
    // A read needs no data from the initiator: it goes to the LU.
    h.command({ read: true, edtl: 64 * KiB, cdb: rwCdb(false, 64 * KiB) });
    await h.settle();
    expect(h.lun.pending().some((c) => c.cdb[0] === 0x28)).toBe(true);
    expect(h.conn.dataOut.pendingBytes).toBe(512 * KiB);
    await h.close();
  });

  it('a write whose Data-Out stops coming ends with 0B/4B/06 and frees its buffer', async () => {
    const h = await FakeConnection.open({
      params: { InitialR2T: true, ImmediateData: false },
      tuning: { maxTransferLength: 256 * KiB, maxPendingWriteBytes: 1024 * KiB, dataOutTimeoutSec: 1 },
    });
    const slabBefore = h.slab.inUse;
    const w = h.command({ write: true, edtl: 64 * KiB, cdb: rwCdb(true, 64 * KiB) });
    const r2t = await h.takeOne();
    expect(r2t.opcode).toBe(Opcode.R2T);
    // Half the data, then silence.
    h.dataOut({ itt: w.itt, ttt: r2t.ttt, offset: 0, data: Buffer.alloc(8 * KiB, 1), final: false });
    await new Promise((r) => setTimeout(r, 1800));
    const resp = await h.takeOne();
    expect([resp.opcode, resp.itt, resp.status]).toEqual([Opcode.SCSI_RESPONSE, w.itt, CHECK_CONDITION]);
    const sense = resp.sense;
    expect([sense[2]! & 0x0f, sense[12], sense[13]]).toEqual([0x0b, 0x4b, 0x06]);
    await h.settle();
    expect(h.slab.inUse).toBe(slabBefore);
    expect(h.conn.dataOut.pendingBytes).toBe(0);
    expect(h.lun.pending()).toHaveLength(0);
    // A late Data-Out for it is discarded, not taken for a new command.
    h.dataOut({ itt: w.itt, ttt: r2t.ttt, offset: 8 * KiB, data: Buffer.alloc(8 * KiB, 1), final: false });
    await h.settle();
    expect(h.lun.pending()).toHaveLength(0);
    await h.close();
  });
});

/**
 * R2T flow control with MaxOutstandingR2T above 1 (RFC 7143 10.8, 13.17): the target
 * keeps up to that many R2Ts outstanding per task, each for at most MaxBurstLength, in
 * increasing offset order (DataSequenceInOrder=Yes), and the data lands intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { cleanup, ramDiskYaml, startTarget, type StartedTarget } from '../helpers/target.ts';
import {
  Opcode,
  Status,
  TEST_UNIT_READY,
  connectAndLogin,
  read10,
  scsiCommandBhs,
  write10,
} from '../helpers/initiator.ts';

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    yaml: ramDiskYaml(`
iscsi: { maxOutstandingR2T: 4, maxBurstLength: 64KiB, firstBurstLength: 64KiB }
`),
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe('MaxOutstandingR2T > 1', () => {
  it('solicits a 1 MiB write as 16 bursts of 64 KiB, four at a time, in offset order', async () => {
    const ini = await connectAndLogin(t.port, t.iqn, {
      initiatorName: 'iqn.2026-11.io.spindle:r2t',
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
        ['MaxOutstandingR2T', '8'],
        ['MaxBurstLength', '65536'],
        ['FirstBurstLength', '65536'],
        ['MaxRecvDataSegmentLength', '65536'],
      ],
    });
    try {
      expect(ini.negotiated.maxOutstandingR2T).toBe(4); // min(8, target's 4): RFC 7143 13.17
      const data = randomBytes(1024 * 1024);
      const w = await ini.scsi(write10(0, 2048), { write: true, edtl: data.length, data });
      expect(w.status).toBe(Status.GOOD);
      expect(w.r2ts.length).toBe(16);
      const offsets = w.r2ts.map((p) => p.bhs.readUInt32BE(40));
      expect(offsets).toEqual(Array.from({ length: 16 }, (_, i) => i * 65536));
      for (const p of w.r2ts) expect(p.bhs.readUInt32BE(44)).toBe(65536); // desired length
      expect(w.r2ts.map((p) => p.bhs.readUInt32BE(36))).toEqual([...Array(16).keys()]); // R2TSN
      const r = await ini.scsi(read10(0, 2048), { read: true, edtl: data.length });
      expect(r.status).toBe(Status.GOOD);
      expect(r.data.equals(data)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('has exactly MaxOutstandingR2T R2Ts outstanding while no data arrives', async () => {
    const ini = await connectAndLogin(t.port, t.iqn, {
      initiatorName: 'iqn.2026-11.io.spindle:r2t-raw',
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
        ['MaxOutstandingR2T', '4'],
        ['MaxBurstLength', '65536'],
      ],
    });
    try {
      await ini.scsi(TEST_UNIT_READY, { edtl: 0 }); // absorb the first-contact unit attention
      const itt = ini.allocItt();
      ini.send(
        scsiCommandBhs({
          itt,
          write: true,
          edtl: 1024 * 1024,
          cmdSN: ini.takeCmdSN(),
          expStatSN: ini.expStatSN,
          cdb: write10(0, 2048),
        }),
      );
      const seen: number[] = [];
      for (;;) {
        const p = await ini.maybePdu(500);
        if (p === null) break;
        if (p.opcode === Opcode.R2T && p.itt === itt) seen.push(p.bhs.readUInt32BE(40));
      }
      // RFC 7143 13.17: never more than MaxOutstandingR2T unanswered R2Ts for a task.
      expect(seen).toEqual([0, 65536, 131072, 196608]);
    } finally {
      ini.close();
    }
  });
});

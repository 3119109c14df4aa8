/**
 * The task set and unit attentions of the target core through the real target and the
 * TypeScript initiator: POWER ON / I_T NEXUS LOSS unit attentions per I_T nexus
 * (SAM-5 6.3), task attributes across pipelined commands (SAM-5 8.6) and the per-LU
 * queue depth (SAM-5 5.3.2, device option `queueDepth`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { TmfFunction, TmfResponse } from '../../src/shared/iscsi/pdu.ts';
import {
  Opcode,
  Status,
  TEST_UNIT_READY,
  connectAndLogin,
  read10,
  scsiCommandBhs,
  write10,
  type Initiator,
} from '../helpers/initiator.ts';

const ISID = Buffer.from([0x40, 0x00, 0x00, 0x00, 0x77, 0x01]);
const LUN_FILE = 1;
const BLOCK = 4096;
/** queueDepth of the file device (LUN 1). */
const DEPTH = 3;

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget({
    yaml: ({ port, iqn, dir }) => `
clusterId: test
logging: { level: info }
workers: { session: 2, lun: 2 }
devices:
  - name: ram0
    ram: { size: 64MiB }
  - name: file0
    file: { path: ${dir}/file0.img, size: 32MiB }
    blockSize: ${BLOCK}
    queueDepth: ${DEPTH}
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0, 1: file0 }
`,
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

function sense(b: Buffer): [number, number, number] {
  return [b[2]! & 0x0f, b[12]!, b[13]!];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Piped {
  cdb: Buffer;
  attr: number;
  read?: number;
  write?: Buffer;
}
interface PipedResult {
  status: number;
  data: Buffer;
  sense: Buffer;
}

/**
 * Send every command in one socket write (so they reach the LU in one batch), then
 * collect their responses in whatever order they come. Writes go as immediate data.
 */
async function pipeline(ini: Initiator, lun: number, cmds: Piped[]): Promise<PipedResult[]> {
  const itts = cmds.map(() => ini.allocItt());
  const frames = cmds.map((c, i) =>
    ini.frame(
      scsiCommandBhs({
        read: c.read !== undefined,
        write: c.write !== undefined,
        attr: c.attr,
        lun,
        itt: itts[i],
        edtl: c.read ?? c.write?.length ?? 0,
        cmdSN: ini.takeCmdSN(),
        expStatSN: ini.expStatSN,
        cdb: c.cdb,
      }),
      c.write ?? Buffer.alloc(0),
    ),
  );
  ini.sendRaw(Buffer.concat(frames));
  const results = new Map<number, PipedResult>();
  const data = new Map<number, Buffer>(itts.map((itt, i) => [itt, Buffer.alloc(cmds[i]!.read ?? 0)]));
  while (results.size < cmds.length) {
    const p = await ini.nextPdu(10_000);
    if (p.opcode === Opcode.R2T) throw new Error('unexpected R2T: the writes carry immediate data');
    if (p.opcode === Opcode.DATA_IN) {
      p.data.copy(data.get(p.itt)!, p.bhs.readUInt32BE(40));
      if ((p.flags & 0x01) !== 0)
        results.set(p.itt, { status: p.bhs[3]!, data: data.get(p.itt)!, sense: Buffer.alloc(0) });
    } else if (p.opcode === Opcode.SCSI_RESPONSE) {
      const sl = p.data.length >= 2 ? p.data.readUInt16BE(0) : 0;
      results.set(p.itt, {
        status: p.bhs[3]!,
        data: data.get(p.itt)!,
        sense: Buffer.from(p.data.subarray(2, 2 + sl)),
      });
    }
  }
  return itts.map((itt) => results.get(itt)!);
}

describe('unit attentions per I_T nexus (SAM-5 6.3)', () => {
  it("a nexus's first command gets POWER ON, RESET OR BUS DEVICE RESET OCCURRED, then GOOD; a returning nexus gets I_T NEXUS LOSS OCCURRED", async () => {
    const name = 'iqn.2026-11.io.spindle:ua-first';
    const a = await connectAndLogin(t.port, t.iqn, { initiatorName: name, isid: ISID });
    try {
      // INQUIRY is served and leaves the condition pending (SAM-5 5.14).
      const inq = await a.scsi(Buffer.from([0x12, 0, 0, 0, 96, 0]), {
        read: true,
        edtl: 96,
        rawUnitAttention: true,
      });
      expect(inq.status).toBe(Status.GOOD);
      const first = await a.scsi(TEST_UNIT_READY, { edtl: 0, rawUnitAttention: true });
      expect(first.status).toBe(Status.CHECK_CONDITION);
      expect(sense(first.sense)).toEqual([0x06, 0x29, 0x00]);
      expect((await a.scsi(TEST_UNIT_READY, { edtl: 0, rawUnitAttention: true })).status).toBe(Status.GOOD);
      const lo = await a.logout();
      expect(lo.opcode).toBe(Opcode.LOGOUT_RESPONSE);
    } finally {
      a.close();
    }
    await sleep(200); // the session's end (NEXUS_LOSS) reaches the LUN worker
    // Same InitiatorName and ISID through the same portal: the same I_T nexus.
    const b = await connectAndLogin(t.port, t.iqn, { initiatorName: name, isid: ISID });
    try {
      const r = await b.scsi(TEST_UNIT_READY, { edtl: 0, rawUnitAttention: true });
      expect(r.status).toBe(Status.CHECK_CONDITION);
      expect(sense(r.sense)).toEqual([0x06, 0x29, 0x07]);
      expect((await b.scsi(TEST_UNIT_READY, { edtl: 0, rawUnitAttention: true })).status).toBe(Status.GOOD);
    } finally {
      b.close();
    }
  });
});

describe('task attributes (SAM-5 8.6)', () => {
  it('an ORDERED WRITE after a SIMPLE READ: the READ sees the old data, a later SIMPLE READ the new', async () => {
    const ini = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:ordered' });
    try {
      expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0, lun: LUN_FILE })).status).toBe(Status.GOOD);
      const lba = 100;
      const before = Buffer.alloc(BLOCK * 4, 0xaa);
      const after = Buffer.alloc(BLOCK * 4, 0x55);
      for (let round = 0; round < 5; round++) {
        const w = await ini.scsi(write10(lba, 4), {
          write: true,
          edtl: before.length,
          data: before,
          lun: LUN_FILE,
        });
        expect(w.status).toBe(Status.GOOD);
        const [r1, wr, r2] = await pipeline(ini, LUN_FILE, [
          { cdb: read10(lba, 4), attr: 1, read: BLOCK * 4 },
          { cdb: write10(lba, 4), attr: 2, write: after },
          { cdb: read10(lba, 4), attr: 1, read: BLOCK * 4 },
        ]);
        expect([r1!.status, wr!.status, r2!.status]).toEqual([Status.GOOD, Status.GOOD, Status.GOOD]);
        expect(r1!.data.equals(before)).toBe(true);
        expect(r2!.data.equals(after)).toBe(true);
      }
    } finally {
      ini.close();
    }
  });

  it('HEAD OF QUEUE and ORDERED commands mixed with SIMPLE ones all complete', async () => {
    const ini = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:mixed' });
    try {
      expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
      const cmds: Piped[] = [];
      for (let i = 0; i < 24; i++)
        cmds.push({ cdb: read10(i * 8, 8), attr: [1, 2, 3, 0][i % 4]!, read: 4096 });
      const rs = await pipeline(ini, 0, cmds);
      expect(rs.map((r) => r.status)).toEqual(cmds.map(() => Status.GOOD));
    } finally {
      ini.close();
    }
  });

  it('the ACA attribute without an ACA condition: CHECK CONDITION, INVALID MESSAGE ERROR', async () => {
    const ini = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:aca' });
    try {
      expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
      const r = await ini.scsi(TEST_UNIT_READY, { edtl: 0, attr: 4 });
      expect(r.status).toBe(Status.CHECK_CONDITION);
      expect(sense(r.sense)).toEqual([0x05, 0x49, 0x00]);
    } finally {
      ini.close();
    }
  });
});

describe('auto contingent allegiance (SAM-5 5.9) through the target', () => {
  const ACA_ACTIVE = 0x30;
  /** READ(10) past the end of the 64 MiB LU, NACA = 1 in the control byte. */
  function failingRead(): Buffer {
    const c = read10(0x7fffffff, 1);
    c[9] = 0x04;
    return c;
  }

  it('NACA = 1 and CHECK CONDITION: ACA ACTIVE for everyone, an ACA command for the faulted nexus, CLEAR ACA ends it', async () => {
    const a = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:aca-a' });
    const b = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:aca-b' });
    try {
      for (const ini of [a, b]) expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
      const f = await a.scsi(failingRead(), { read: true, edtl: 512 });
      expect(f.status).toBe(Status.CHECK_CONDITION);
      expect(sense(f.sense)).toEqual([0x05, 0x21, 0x00]); // LBA OUT OF RANGE
      expect((await b.scsi(read10(0, 1), { read: true, edtl: 512 })).status).toBe(ACA_ACTIVE);
      expect((await a.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(ACA_ACTIVE);
      // The faulted nexus's recovery command, with the ACA attribute, is served.
      const rec = await a.scsi(read10(0, 1), { read: true, edtl: 512, attr: 4 });
      expect(rec.status).toBe(Status.GOOD);
      // CLEAR ACA for a LUN the session does not have: LUN does not exist (RFC 7143 11.6.1).
      expect((await a.tmf({ fn: TmfFunction.CLEAR_ACA, lun: 9 })).bhs[2]).toBe(TmfResponse.LUN_DOES_NOT_EXIST);
      expect((await b.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(ACA_ACTIVE);
      // CLEAR ACA from another nexus changes nothing; from the faulted one it clears.
      expect((await b.tmf({ fn: TmfFunction.CLEAR_ACA, lun: 0 })).bhs[2]).toBe(TmfResponse.FUNCTION_COMPLETE);
      expect((await b.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(ACA_ACTIVE);
      expect((await a.tmf({ fn: TmfFunction.CLEAR_ACA, lun: 0 })).bhs[2]).toBe(TmfResponse.FUNCTION_COMPLETE);
      expect((await b.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
      expect((await a.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
      // INQUIRY reports NormACA.
      const inq = await a.scsi(Buffer.from([0x12, 0, 0, 0, 36, 0]), { read: true, edtl: 36 });
      expect(inq.data[3]! & 0x20).toBe(0x20);
    } finally {
      a.close();
      b.close();
    }
  });

  it('the loss of the faulted nexus clears the ACA condition', async () => {
    const a = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:aca-c' });
    const b = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:aca-d' });
    try {
      for (const ini of [a, b]) expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
      expect((await a.scsi(failingRead(), { read: true, edtl: 512 })).status).toBe(Status.CHECK_CONDITION);
      expect((await b.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(ACA_ACTIVE);
      a.close();
      let status = -1;
      for (let i = 0; i < 50 && status !== Status.GOOD; i++) {
        await sleep(20);
        status = (await b.scsi(TEST_UNIT_READY, { edtl: 0 })).status;
      }
      expect(status).toBe(Status.GOOD);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('queue depth (SAM-5 5.3.2)', () => {
  it('commands beyond queueDepth complete with TASK SET FULL; the others are served', async () => {
    const ini = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:depth' });
    try {
      expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0, lun: LUN_FILE })).status).toBe(Status.GOOD);
      const blocks = 32; // 128 KiB per READ: file I/O keeps the first ones in flight
      const cmds: Piped[] = [];
      for (let i = 0; i < 32; i++)
        cmds.push({ cdb: read10(i * blocks, blocks), attr: 1, read: blocks * BLOCK });
      const rs = await pipeline(ini, LUN_FILE, cmds);
      const statuses = rs.map((r) => r.status);
      expect(statuses.every((s) => s === Status.GOOD || s === Status.TASK_SET_FULL)).toBe(true);
      expect(statuses.filter((s) => s === Status.TASK_SET_FULL).length).toBeGreaterThan(0);
      expect(statuses.filter((s) => s === Status.GOOD).length).toBeGreaterThanOrEqual(DEPTH);
      // TASK SET FULL carries no sense and no data; the LU serves again afterwards.
      for (const r of rs) if (r.status === Status.TASK_SET_FULL) expect(r.sense.length).toBe(0);
      expect((await ini.scsi(read10(0, 1), { read: true, edtl: BLOCK, lun: LUN_FILE })).status).toBe(
        Status.GOOD,
      );
    } finally {
      ini.close();
    }
  });
});

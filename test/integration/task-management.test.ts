/**
 * Task management that reaches the logical unit (SAM-5 7): a LOGICAL UNIT RESET from one
 * session resets the LU for every I_T nexus, and a target reset for every LU of the target.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TmfFunction, TmfResponse } from '../../src/shared/iscsi/pdu.ts';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { Status, TEST_UNIT_READY, connectAndLogin, type Initiator } from '../helpers/initiator.ts';

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget();
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

async function session(name: string): Promise<Initiator> {
  const ini = await connectAndLogin(t.port, t.iqn, { initiatorName: `iqn.2026-11.io.spindle:${name}` });
  // Clear whatever unit attention a fresh nexus may have, then expect GOOD.
  for (let i = 0; i < 4; i++) {
    const r = await ini.scsi(TEST_UNIT_READY, { edtl: 0 });
    if (r.status === Status.GOOD) return ini;
  }
  throw new Error('TEST UNIT READY never returned GOOD');
}

/** Sense key / ASC / ASCQ of a fixed-format sense buffer. */
function sense(b: Buffer): [number, number, number] {
  return [b[2]! & 0x0f, b[12]!, b[13]!];
}

describe('LOGICAL UNIT RESET', () => {
  it('answers Function Complete and establishes BUS DEVICE RESET FUNCTION OCCURRED for every nexus', async () => {
    const a = await session('tmf-a');
    const b = await session('tmf-b');
    try {
      const rsp = await a.tmf({ fn: TmfFunction.LOGICAL_UNIT_RESET, lun: 0 });
      expect(rsp.bhs[2]).toBe(TmfResponse.FUNCTION_COMPLETE);
      for (const ini of [b, a]) {
        const r = await ini.scsi(TEST_UNIT_READY, { edtl: 0 });
        expect(r.status).toBe(Status.CHECK_CONDITION);
        expect(sense(r.sense)).toEqual([0x06, 0x29, 0x03]);
        expect((await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).status).toBe(Status.GOOD);
      }
      // LUN 1 was not reset.
      expect((await b.scsi(TEST_UNIT_READY, { edtl: 0, lun: 1 })).status).not.toBe(Status.CHECK_CONDITION);
    } finally {
      a.close();
      b.close();
    }
  });

  it('a reset of a LUN that is not mapped answers "LUN does not exist"', async () => {
    const a = await session('tmf-c');
    try {
      const rsp = await a.tmf({ fn: TmfFunction.LOGICAL_UNIT_RESET, lun: 9 });
      expect(rsp.bhs[2]).toBe(TmfResponse.LUN_DOES_NOT_EXIST);
    } finally {
      a.close();
    }
  });
});

describe('TARGET WARM RESET', () => {
  it('resets every LU of the target: the other session sees POWER ON, RESET on both LUNs', async () => {
    const a = await session('tmf-d');
    const b = await session('tmf-e');
    try {
      await b.scsi(TEST_UNIT_READY, { edtl: 0, lun: 1 }); // make LUN 1 know nexus b
      const rsp = await a.tmf({ fn: TmfFunction.TARGET_WARM_RESET });
      expect(rsp.bhs[2]).toBe(TmfResponse.FUNCTION_COMPLETE);
      for (const lun of [0, 1]) {
        const r = await b.scsi(TEST_UNIT_READY, { edtl: 0, lun });
        expect(r.status).toBe(Status.CHECK_CONDITION);
        expect(sense(r.sense)).toEqual([0x06, 0x29, 0x00]);
      }
    } finally {
      a.close();
      b.close();
    }
  });
});

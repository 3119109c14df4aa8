/**
 * Task management that SAM-5 applies to every I_T nexus of a logical unit, issued through
 * one node, reaching the nexuses of the other (issue 10, "LUN RESET and CLEAR TASK SET
 * semantics for nexuses on other nodes, as SAM requires"):
 *
 *   - CLEAR TASK SET through a (SAM-5 7.6, one task set per LU): the commands a host has
 *     waiting at b are aborted, and the function is complete only once none of them can
 *     still write;
 *   - LOGICAL UNIT RESET through a (SAM-5 6.3.3): the same, BUS DEVICE RESET FUNCTION
 *     OCCURRED for every nexus of b, and the SPC-2 reservation a host on b held is gone;
 *   - TARGET WARM RESET through a (SAM-5 6.3.2): POWER ON, RESET for the nexuses of b.
 *
 * The commands at b are held there (queued behind a long ORDERED WRITE SAME) so that they
 * are certainly in b's task set when the function goes out through a. TAS is set on node
 * b (control mode page) so that its aborted commands end with TASK ABORTED (SPC-4 7.5.8)
 * instead of no status: the test sees every one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startCluster, type StartedCluster } from '../helpers/cluster.ts';
import {
  BLOCK,
  checkCondition,
  closeAll,
  good,
  loginHost,
  outcomeOf as outcome,
  Pipeline,
  readRegion,
  RELEASE6,
  RESERVE6,
  saveLogs,
  ScsiStatus,
  SENSE,
  settle,
  sleep,
  stamp,
  tur,
  writeSame16,
  writeBlocks,
  type Host,
  type Outcome,
} from '../helpers/cluster-scsi.ts';
import { TmfFunction, TmfResponse } from '../../src/shared/iscsi/pdu.ts';
import { Opcode, scsiCommandBhs, write10 } from '../helpers/initiator.ts';
import { u32 } from '../../src/shared/iscsi/pdu.ts';

const LEASE = { ttlSec: 3, renewSec: 0.3, marginSec: 0.9 };
const A = 0;
const B = 1;

let redis: RedisServer;
let c: StartedCluster;

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  c = await startCluster({ nodes: 2, redis, lease: LEASE, deviceSize: '512MiB' });
  // TAS = 1 on node b: its aborted commands end with TASK ABORTED.
  const h = await loginHost(c, B, 'tmf-tas');
  try {
    await setTas(h);
  } finally {
    closeAll(h);
  }
});

afterAll(async () => {
  saveLogs(c, 'tmf');
  await c?.close();
  await redis?.close();
});

/**
 * Control mode page (SPC-4 7.5.8) with TAS = 1: MODE SENSE(10) of the current page, then
 * MODE SELECT(10) (PF = 1) of it with byte 5 bit 6 set.
 */
async function setTas(h: Host): Promise<void> {
  const sense = Buffer.from([0x5a, 0x08, 0x0a, 0, 0, 0, 0, 0x01, 0x00, 0]); // DBD, current, page 0Ah, 256 bytes
  const r = await h.ini.scsi(sense, { read: true, edtl: 256 });
  good(r, 'MODE SENSE(10) control page');
  const bdl = r.data.readUInt16BE(6);
  const page = Buffer.from(r.data.subarray(8 + bdl, 8 + bdl + 2 + r.data[8 + bdl + 1]!));
  expect(page[0]! & 0x3f, 'control mode page').toBe(0x0a);
  page[0] = page[0]! & 0x3f; // PS is reserved in MODE SELECT
  page[5] = page[5]! | 0x40; // TAS
  const params = Buffer.concat([Buffer.alloc(8), page]);
  const select = Buffer.from([0x55, 0x10, 0, 0, 0, 0, 0, 0, params.length, 0]);
  good(
    await h.ini.scsi(select, { write: true, edtl: params.length, data: params }),
    'MODE SELECT(10) TAS = 1',
  );
}

/** A task management request from `h` (LUN 0); resolves with its response code. */
async function tmf(h: Host, fn: number): Promise<number> {
  const rsp = await h.ini.tmf({ fn, lun: 0 }, 30_000);
  return rsp.bhs[2]!;
}

/** Each long command covers 64 MiB (the same range every time: written once, then rewritten). */
const FILL_BLOCKS = 131072;
/** Long commands queued one behind the other (each ORDERED). */
const FILLS = 16;
const QUEUED = 32;
const BLOCKS_PER_WRITE = 8;

type Pending = { done: Promise<Outcome | undefined>; outcome?: Outcome | undefined };

/**
 * A host on b sends FILLS long ORDERED WRITE SAMEs (each waits for the one before it),
 * then QUEUED WRITEs, which wait in b's task set behind them (SAM-5 8.6.3: a SIMPLE task
 * waits for an earlier ORDERED one). `fn` goes out through a while they wait. Checks:
 * the function completes; every WRITE still waiting is aborted (TASK ABORTED, TAS = 1)
 * and reaches nothing; nothing changes on the medium after the function completed.
 */
async function tmfWhileQueued(
  name: string,
  base: number,
  fn: number,
): Promise<{ issuer: Host; writer: Host }> {
  const writer = await loginHost(c, B, `${name}-writer-b`);
  const issuer = await loginHost(c, A, `${name}-issuer-a`);
  // Reads the medium through a (its unit attentions taken first: the issuer keeps its own).
  const reader = await loginHost(c, A, `${name}-reader-a`);
  const fillLba = base;
  const writesLba = base + FILL_BLOCKS;
  const pipe = new Pipeline(writer.ini);
  const fills: Pending[] = [];
  for (let i = 0; i < FILLS; i++)
    fills.push({
      done: (await pipe.command(writeSame16(fillLba, FILL_BLOCKS), stamp('FILL', i, fillLba, 1), 2)).done,
    });
  const writes: Pending[] = [];
  for (let i = 0; i < QUEUED; i++) {
    const lba = writesLba + i * BLOCKS_PER_WRITE;
    writes.push({ done: (await pipe.write(lba, stamp('QUED', i, lba, BLOCKS_PER_WRITE))).done });
  }
  for (const p of [...fills, ...writes]) void p.done.then((o) => (p.outcome = o));
  // Let b receive them all; the first fills run meanwhile.
  await sleep(150);
  const stillQueued = fills.filter((f) => !('outcome' in f)).length;
  expect(stillQueued, 'long commands still waiting when the function goes out').toBeGreaterThan(1);
  expect(await tmf(issuer, fn), 'function complete').toBe(TmfResponse.FUNCTION_COMPLETE);
  const completedAt = performance.now();
  await settle(reader);
  const region = async (): Promise<Buffer> =>
    Buffer.concat([
      await readRegion(reader, fillLba, 256),
      await readRegion(reader, fillLba + FILL_BLOCKS - 256, 256),
      await readRegion(reader, writesLba, QUEUED * BLOCKS_PER_WRITE),
    ]);
  const s1 = await region();
  for (const p of [...fills, ...writes]) p.outcome = await p.done;
  await sleep(1000);
  const s2 = await region();
  expect(s2.equals(s1), 'the medium changed after the function completed').toBe(true);

  const fillOutcomes = fills.map((f) => (f.outcome === undefined ? 'none' : outcome(f.outcome)));
  const aborted = `status 0x${ScsiStatus.TASK_ABORTED.toString(16)}`;
  // The fills that ran before the function are GOOD, the one running may be either, the rest aborted.
  const firstAborted = fillOutcomes.indexOf(aborted);
  expect(firstAborted, `fills: ${fillOutcomes.join(', ')}`).toBeGreaterThanOrEqual(0);
  expect(
    fillOutcomes.slice(0, firstAborted).every((x) => x === 'GOOD') &&
      fillOutcomes.slice(firstAborted).every((x) => x === aborted),
    `fills: ${fillOutcomes.join(', ')}`,
  ).toBe(true);
  for (const f of fills)
    expect(f.outcome!.at, 'every fill ended by the time the function completed').toBeLessThanOrEqual(
      completedAt + 50,
    );
  expect(
    writes.map((w) => (w.outcome === undefined ? 'none' : outcome(w.outcome))),
    'the queued WRITEs',
  ).toEqual(writes.map(() => aborted));
  expect(
    s1.subarray(512 * BLOCK).every((x) => x === 0),
    'no queued WRITE reached the medium',
  ).toBe(true);
  console.log(
    `${name}: ${FILLS - firstAborted} of ${FILLS} long commands and all ${QUEUED} WRITEs queued at b aborted`,
  );
  closeAll(reader);
  return { issuer, writer };
}

describe('task management through node a reaches the nexuses of node b', () => {
  it('CLEAR TASK SET aborts the commands waiting at b; none writes after the function completed', async () => {
    const { issuer, writer } = await tmfWhileQueued('clear', 8192, TmfFunction.CLEAR_TASK_SET);
    try {
      // With TAS = 1 the aborted commands carried TASK ABORTED: no unit attention follows.
      good(await tur(writer), 'writer on b after CLEAR TASK SET');
    } finally {
      closeAll(issuer, writer);
    }
  });

  it('LOGICAL UNIT RESET aborts the commands waiting at b; none writes after the function completed; every nexus of b is told', async () => {
    const idle = await loginHost(c, B, 'reset-idle-b');
    try {
      const { issuer, writer } = await tmfWhileQueued('reset', 262144, TmfFunction.LOGICAL_UNIT_RESET);
      try {
        // SAM-5 6.3.3: BUS DEVICE RESET FUNCTION OCCURRED for every I_T nexus, those on b too.
        checkCondition(
          await tur(idle),
          SENSE.BUS_DEVICE_RESET,
          'idle host on b after the LUN RESET through a',
        );
        good(await tur(idle), 'idle host on b, second command');
        checkCondition(await tur(issuer), SENSE.BUS_DEVICE_RESET, 'the issuer on a');
      } finally {
        closeAll(issuer, writer);
      }
    } finally {
      closeAll(idle);
    }
  });

  it('LOGICAL UNIT RESET through a also ends a WRITE at b that is still waiting for its data', async () => {
    // The WRITE's CDB is at node b (it answered with an R2T), its data is not: the task
    // is in the task set (SAM-5 5.1), so the reset must abort it; its data, sent after
    // the reset completed, must not reach the medium.
    const lba = 400_000;
    const writer = await loginHost(c, B, 'r2t-writer-b', {
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
      ],
    });
    const issuer = await loginHost(c, A, 'r2t-issuer-a');
    const reader = await loginHost(c, A, 'r2t-reader-a');
    try {
      const ini = writer.ini;
      const data = stamp('R2TW', 0, lba, 8);
      const itt = ini.allocItt();
      ini.send(
        scsiCommandBhs({
          final: true,
          write: true,
          attr: 1,
          lun: 0,
          itt,
          edtl: data.length,
          cmdSN: ini.takeCmdSN(),
          expStatSN: ini.expStatSN,
          cdb: write10(lba, 8),
        }),
      );
      const r2t = await ini.waitFor((p) => p.itt === itt && p.opcode === Opcode.R2T, 10_000);
      expect(await tmf(issuer, TmfFunction.LOGICAL_UNIT_RESET), 'function complete').toBe(
        TmfResponse.FUNCTION_COMPLETE,
      );
      await settle(reader);
      const before = (await readRegion(reader, lba, 8)).equals(Buffer.alloc(8 * BLOCK));
      // Now the data: the aborted WRITE must not take it.
      ini.sendDataOut(itt, 0, r2t.ttt, data, u32(r2t.bhs, 40), u32(r2t.bhs, 44));
      const rsp = await ini
        .waitFor((p) => p.itt === itt && p.opcode === Opcode.SCSI_RESPONSE, 3_000)
        .catch(() => null);
      await sleep(500);
      const after = await readRegion(reader, lba, 8);
      expect(before, 'nothing written when the reset completed').toBe(true);
      expect(
        rsp === null ? 'no status' : `status 0x${rsp.bhs[3]!.toString(16)}`,
        'the WRITE after the reset',
      ).not.toBe('status 0x0');
      expect(
        after.equals(Buffer.alloc(8 * BLOCK)),
        'the WRITE reached the medium after the reset completed',
      ).toBe(true);
    } finally {
      closeAll(writer, issuer, reader);
    }
  });

  it('LOGICAL UNIT RESET through a releases the SPC-2 reservation held through b (SAM-5 6.3.2)', async () => {
    const holder = await loginHost(c, B, 'spc2-holder-b');
    const other = await loginHost(c, B, 'spc2-other-b');
    const issuer = await loginHost(c, A, 'spc2-issuer-a');
    try {
      good(await holder.ini.scsi(RESERVE6, { edtl: 0 }), 'RESERVE(6) through b');
      expect(
        outcome(await writeBlocks(other, 0, stamp('OTHR', 0, 0, 1))),
        'another host on b writes under it',
      ).toBe('status 0x18');
      expect(
        outcome(await writeBlocks(issuer, 0, stamp('ISSU', 0, 0, 1))),
        'a host on a writes under it',
      ).toBe('status 0x18');
      expect(await tmf(issuer, TmfFunction.LOGICAL_UNIT_RESET), 'function complete').toBe(
        TmfResponse.FUNCTION_COMPLETE,
      );
      checkCondition(await tur(other), SENSE.BUS_DEVICE_RESET, 'other host on b');
      good(
        await writeBlocks(other, 0, stamp('OTHR', 1, 0, 1)),
        'another host writes through b after the reset',
      );
      checkCondition(await tur(holder), SENSE.BUS_DEVICE_RESET, 'former holder on b');
      good(await holder.ini.scsi(RELEASE6, { edtl: 0 }), 'RELEASE(6) of nothing is GOOD');
    } finally {
      closeAll(holder, other, issuer);
    }
  });

  it('TARGET WARM RESET through a: POWER ON, RESET for the nexuses of b', async () => {
    const issuer = await loginHost(c, A, 'warm-issuer-a');
    const idle = await loginHost(c, B, 'warm-idle-b');
    try {
      expect(await tmf(issuer, TmfFunction.TARGET_WARM_RESET), 'function complete').toBe(
        TmfResponse.FUNCTION_COMPLETE,
      );
      checkCondition(
        await tur(idle),
        SENSE.POWER_ON_RESET,
        'idle host on b after TARGET WARM RESET through a',
      );
      good(await tur(idle), 'idle host on b, second command');
    } finally {
      closeAll(issuer, idle);
    }
  });

  // Last in the file: it stops Redis.
  it('a LOGICAL UNIT RESET that cannot reach the other node (Redis down) is FUNCTION REJECTED, not COMPLETE', async () => {
    const issuer = await loginHost(c, A, 'unreachable-reset-a');
    try {
      await redis.stop();
      expect(
        await tmf(issuer, TmfFunction.LOGICAL_UNIT_RESET),
        'commands on b may still run: the initiator must not be told the function is complete',
      ).toBe(TmfResponse.FUNCTION_REJECTED);
    } finally {
      closeAll(issuer);
      await redis.restart();
    }
  });
});

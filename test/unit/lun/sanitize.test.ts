/**
 * The sanitize operation (SBC-4 4.11, 5.30; sbc/sanitize.ts, sbc/sanitize-operation.ts):
 * what the LU answers while it runs (NOT READY with progress, REQUEST SENSE as pollable
 * sense data), that it outlives its SANITIZE command (ABORT TASK, resets, nexus loss),
 * the failed state with AUSE, and that it resumes after a restart.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScsiStatus, TaskAttribute } from '../../../src/shared/scsi/command.ts';
import { TmfFunction } from '../../../src/shared/iscsi/pdu.ts';
import type { DeviceConfig } from '../../../src/shared/config-types.ts';
import { executeCommand, submitCommand } from '../../../src/workers/lun/execute.ts';
import { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import { nexusLost } from '../../../src/workers/lun/nexus-events.ts';
import { SanitizeState } from '../../../src/workers/lun/sbc/state.ts';
import { applyTaskManagement } from '../../../src/workers/lun/task-management.ts';
import { CLUSTER, TEST_ENV, TestCommand, cdb10, makeCommand, ramDevice, run, tempDir } from './helpers.ts';

/** 16 MiB of 512-byte blocks: 16 chunks, so the operation spans several event-loop turns. */
const BLOCKS = 32768;

/** finish() leaves the task set, as the LUN worker's LunTask does. */
class LuTask extends TestCommand {
  aborted = false;
  abortedWithStatus = false;
  lu: LogicalUnit | null = null;
  override finish(): void {
    super.finish();
    this.lu?.taskSet.remove(this);
  }
}

function sanitizeCdb(
  action: number,
  opts: { immed?: boolean; ause?: boolean; paramLength?: number } = {},
): number[] {
  const len = opts.paramLength ?? 0;
  return [
    0x48,
    (opts.immed ? 0x80 : 0) | (opts.ause ? 0x20 : 0) | action,
    0,
    0,
    0,
    0,
    0,
    len >> 8,
    len & 0xff,
    0,
  ];
}

/** OVERWRITE parameter list: count 1, a pattern of `len` bytes of `byte`. */
function overwriteList(byte: number, len = 4, count = 1, invert = false): Buffer {
  const b = Buffer.alloc(4 + len, byte);
  b[0] = (invert ? 0x80 : 0) | count;
  b[1] = 0;
  b.writeUInt16BE(len, 2);
  return b;
}

function overwrite(lu: LogicalUnit, byte: number, opts: { immed?: boolean; ause?: boolean } = {}): LuTask {
  const list = overwriteList(byte);
  const t = new LuTask(sanitizeCdb(0x01, { ...opts, paramLength: list.length }), list.length);
  list.copy(t.data);
  t.dataOutLength = list.length;
  t.lu = lu;
  return t;
}

function tur(): TestCommand {
  return makeCommand([0, 0, 0, 0, 0, 0]);
}

function requestSense(desc = false): TestCommand {
  return makeCommand([0x03, desc ? 1 : 0, 0, 0, 252, 0], { dataLength: 252 });
}

async function waitIdle(lu: LogicalUnit): Promise<void> {
  while (lu.sbc.sanitize === SanitizeState.IN_PROGRESS) await new Promise((r) => setTimeout(r, 2));
}

/** READ(10) of one block by nexus 1, past any unit attention it has pending. */
async function readBlock(lu: LogicalUnit, lba: number): Promise<Buffer> {
  for (let i = 0; ; i++) {
    const r = await run(lu, makeCommand(cdb10(0x28, lba, 1), { dataLength: lu.blockSize }));
    if (r.status === ScsiStatus.CHECK_CONDITION && r.senseTriple[0] === 0x6 && i < 4) continue;
    expect(r.status).toBe(ScsiStatus.GOOD);
    return r.dataIn;
  }
}

/** TEST UNIT READY by nexus 1 until its unit attentions are consumed. */
function clearUnitAttentions(lu: LogicalUnit): void {
  for (let i = 0; i < 4; i++) {
    const t = tur();
    executeCommand(lu, t);
    if (t.status !== ScsiStatus.CHECK_CONDITION || t.senseTriple[0] !== 0x6) return;
  }
}

describe('SANITIZE operation', () => {
  let dir: { dir: string; cleanup: () => void };
  const open: LogicalUnit[] = [];
  const ram = async (overrides: Partial<DeviceConfig> = {}): Promise<LogicalUnit> => {
    const lu = await LogicalUnit.open(ramDevice(overrides, BLOCKS), CLUSTER, TEST_ENV);
    open.push(lu);
    return lu;
  };
  const fileDevice = (name = 'f0'): DeviceConfig => ({
    ...ramDevice({ name }, 4096),
    backing: { type: 'file', path: path.join(dir.dir, `${name}.img`), size: 4096 * 512 },
  });

  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    for (const lu of open.splice(0)) await lu.close();
    dir.cleanup();
  });

  it('while it runs: NOT READY / SANITIZE IN PROGRESS with a growing progress indication', async () => {
    const lu = await ram();
    const s = overwrite(lu, 0x5a);
    submitCommand(lu, s);
    expect(s.finishCount).toBe(0); // IMMED = 0: status when the operation is done
    const t = tur();
    executeCommand(lu, t);
    expect(t.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(t.senseTriple).toEqual([0x2, 0x04, 0x1b]);
    expect(t.sense[15]! & 0x80).toBe(0x80); // SKSV: progress indication
    const first = t.sense.readUInt16BE(16);
    // Commands SBC-4 4.11.2 lets through.
    const inq = makeCommand([0x12, 0, 0, 0, 36, 0], { dataLength: 36 });
    executeCommand(lu, inq);
    expect(inq.status).toBe(ScsiStatus.GOOD);
    for (const cdb of [cdb10(0x28, 0, 1), [0x1b, 1, 0, 0, 0x10, 0], cdb10(0x2a, 0, 1)]) {
      const c = makeCommand(cdb, {
        dataLength: 512,
        dataOut: cdb[0] === 0x2a ? Buffer.alloc(512) : undefined,
      });
      executeCommand(lu, c);
      expect(c.senseTriple).toEqual([0x2, 0x04, 0x1b]);
    }
    await new Promise((r) => setTimeout(r, 5));
    const rs = requestSense();
    executeCommand(lu, rs);
    expect(rs.status).toBe(ScsiStatus.GOOD); // REQUEST SENSE itself succeeds...
    expect([rs.dataIn[2]! & 0x0f, rs.dataIn[12], rs.dataIn[13]]).toEqual([0x2, 0x04, 0x1b]); // ...with pollable sense
    expect(rs.dataIn[15]! & 0x80).toBe(0x80);
    const later = rs.dataIn.readUInt16BE(16);
    expect(later).toBeGreaterThanOrEqual(first);
    const rd = requestSense(true);
    executeCommand(lu, rd);
    // Descriptor format: 72h, key/ASC/ASCQ, one sense key specific descriptor (02h, 06h).
    expect([rd.dataIn[0], rd.dataIn[1], rd.dataIn[2], rd.dataIn[3], rd.dataIn[7]]).toEqual([
      0x72, 0x2, 0x04, 0x1b, 8,
    ]);
    expect([rd.dataIn[8], rd.dataIn[9], rd.dataIn[12]! & 0x80]).toEqual([0x02, 0x06, 0x80]);
    await s.finished;
    expect(s.status).toBe(ScsiStatus.GOOD);
    expect(lu.sbc.sanitize).toBe(SanitizeState.IDLE);
    expect((await readBlock(lu, BLOCKS - 1)).every((b) => b === 0x5a)).toBe(true);
    const after = requestSense();
    executeCommand(lu, after);
    expect([after.dataIn[2]! & 0x0f, after.dataIn[12]]).toEqual([0, 0]); // NO SENSE again
  });

  it('a pending unit attention comes before the pollable sanitize sense in REQUEST SENSE', async () => {
    const lu = await ram();
    clearUnitAttentions(lu); // nexus 1 is known to the LU now
    executeCommand(lu, overwrite(lu, 1, { immed: true }));
    expect(lu.sbc.sanitize).toBe(SanitizeState.IN_PROGRESS);
    applyTaskManagement(lu, TmfFunction.LOGICAL_UNIT_RESET, 9, () => undefined);
    const first = requestSense();
    executeCommand(lu, first);
    expect([first.dataIn[2]! & 0x0f, first.dataIn[12]]).toEqual([0x6, 0x29]);
    const second = requestSense();
    executeCommand(lu, second);
    expect([second.dataIn[2]! & 0x0f, second.dataIn[12], second.dataIn[13]]).toEqual([0x2, 0x04, 0x1b]);
    await waitIdle(lu);
  });

  it('ABORT TASK ends the waiting SANITIZE command at once; the operation carries on', async () => {
    const lu = await ram();
    const s = overwrite(lu, 0xa5);
    submitCommand(lu, s);
    let acknowledged = false;
    applyTaskManagement(
      lu,
      TmfFunction.ABORT_TASK,
      1,
      () => (acknowledged = true),
      (c) => c === s,
    );
    expect(s.finishCount).toBe(1);
    expect(s.aborted).toBe(true);
    expect(acknowledged).toBe(true);
    expect(lu.taskSet.size).toBe(0);
    expect(lu.sbc.sanitize).toBe(SanitizeState.IN_PROGRESS);
    await waitIdle(lu);
    expect(lu.sbc.sanitize).toBe(SanitizeState.IDLE);
    expect((await readBlock(lu, BLOCKS - 1)).every((b) => b === 0xa5)).toBe(true);
  });

  it('ABORT TASK SET aborts only the issuer’s commands; another nexus’s SANITIZE keeps waiting', async () => {
    const lu = await ram();
    const s = overwrite(lu, 0x11);
    s.nexus = 2;
    submitCommand(lu, s);
    applyTaskManagement(lu, TmfFunction.ABORT_TASK_SET, 1, () => undefined);
    expect(s.finishCount).toBe(0);
    await s.finished;
    expect([s.status, s.aborted]).toEqual([ScsiStatus.GOOD, false]);
  });

  it('LOGICAL UNIT RESET and target reset: the command ends, the sanitize goes on; so after a nexus loss', async () => {
    for (const fn of [TmfFunction.LOGICAL_UNIT_RESET, TmfFunction.TARGET_COLD_RESET, -1]) {
      const lu = await ram({ name: `r${fn}` });
      const s = overwrite(lu, 0x3c);
      submitCommand(lu, s);
      let acknowledged = false;
      if (fn === -1) nexusLost(lu, 1, undefined);
      else applyTaskManagement(lu, fn, 1, () => (acknowledged = true));
      expect(s.finishCount).toBe(1);
      if (fn !== -1) expect([s.aborted, acknowledged]).toEqual([true, true]);
      // Another nexus: past its unit attentions (POWER ON, the reset), the sanitize runs.
      let t = tur();
      for (let i = 0; i < 4; i++) {
        t = tur();
        t.nexus = 3;
        executeCommand(lu, t);
        if (t.senseTriple[0] !== 0x6) break;
      }
      expect(t.senseTriple).toEqual([0x2, 0x04, 0x1b]);
      await waitIdle(lu);
      expect((await readBlock(lu, 0)).every((b) => b === 0x3c)).toBe(true);
    }
  });

  it('a second SANITIZE during the operation is NOT READY; HEAD OF QUEUE or not', async () => {
    const lu = await ram();
    executeCommand(lu, overwrite(lu, 7, { immed: true }));
    const again = overwrite(lu, 8);
    again.attribute = TaskAttribute.HEAD_OF_QUEUE;
    executeCommand(lu, again);
    expect(again.senseTriple).toEqual([0x2, 0x04, 0x1b]);
    await waitIdle(lu);
    expect((await readBlock(lu, 5)).every((b) => b === 7)).toBe(true);
  });

  it('OVERWRITE COUNT 3 with INVERT: the last pass writes the pattern, progress spans all passes', async () => {
    const lu = await ram();
    const list = overwriteList(0x0f, 2, 3, true);
    const s = new LuTask(sanitizeCdb(0x01, { paramLength: list.length }), list.length);
    list.copy(s.data);
    s.dataOutLength = list.length;
    s.lu = lu;
    submitCommand(lu, s);
    expect(lu.sbc.sanitizeOp!.total).toBe(3 * BLOCKS);
    await s.finished;
    expect((await readBlock(lu, 100)).every((b) => b === 0x0f)).toBe(true);
  });

  describe('failure and AUSE (SBC-4 4.11.3)', () => {
    /** Make every write of the LU's store fail until the returned function is called. */
    function breakWrites(lu: LogicalUnit): () => void {
      const store = lu.store;
      const write = store.write.bind(store);
      store.write = (_s, _o, _l, _p, _d, cb) => {
        const err: NodeJS.ErrnoException = new Error('injected');
        err.code = 'EIO';
        cb(err);
      };
      return () => {
        store.write = write;
      };
    }

    it('AUSE = 0: restricted mode, only a successful sanitize leaves the failed state', async () => {
      const lu = await ram();
      const heal = breakWrites(lu);
      const s = overwrite(lu, 1);
      submitCommand(lu, s);
      await s.finished;
      expect(s.senseTriple).toEqual([0x3, 0x31, 0x03]); // MEDIUM ERROR, SANITIZE COMMAND FAILED
      expect(lu.sbc.sanitize).toBe(SanitizeState.FAILED);
      const rd = await run(lu, makeCommand(cdb10(0x28, 0, 1), { dataLength: 512 }));
      expect(rd.senseTriple).toEqual([0x3, 0x31, 0x03]);
      const exit = await run(lu, makeCommand(sanitizeCdb(0x1f)));
      expect(exit.senseTriple).toEqual([0x5, 0x24, 0x00]);
      expect(exit.fieldPointer).toMatchObject({ cd: true, field: 1, bit: 4 });
      heal();
      const unrestricted = overwrite(lu, 2, { ause: true });
      expect((await run(lu, unrestricted)).fieldPointer).toMatchObject({ field: 1, bit: 5 });
      const retry = overwrite(lu, 2);
      submitCommand(lu, retry);
      await retry.finished;
      expect(retry.status).toBe(ScsiStatus.GOOD);
      expect(lu.sbc.sanitize).toBe(SanitizeState.IDLE);
    });

    it('AUSE = 1: EXIT FAILURE MODE leaves the failed state', async () => {
      const lu = await ram();
      breakWrites(lu);
      executeCommand(lu, overwrite(lu, 1, { immed: true, ause: true }));
      while (lu.sbc.sanitize !== SanitizeState.FAILED) await new Promise((r) => setTimeout(r, 1));
      const exit = await run(lu, makeCommand(sanitizeCdb(0x1f)));
      expect(exit.status).toBe(ScsiStatus.GOOD);
      expect(lu.sbc.sanitize).toBe(SanitizeState.IDLE);
      expect((await run(lu, tur())).status).toBe(ScsiStatus.GOOD);
    });
  });

  describe('power loss (SBC-4 4.11.2: resumed after power on)', () => {
    it('a sanitize stopped by a shutdown resumes when the LU opens again', async () => {
      const stateDir = path.join(dir.dir, 'state');
      const dev = fileDevice();
      const lu = await LogicalUnit.open(dev, { ...CLUSTER, stateDir }, TEST_ENV);
      const w = makeCommand(cdb10(0x2a, 10, 1), { dataOut: Buffer.alloc(512, 0xee) });
      expect((await run(lu, w)).status).toBe(ScsiStatus.GOOD);
      executeCommand(lu, overwrite(lu, 0x42, { immed: true }));
      const record = path.join(stateDir, 'sanitize', 'f0.json');
      await lu.close(); // suspends the operation (a clean shutdown mid-sanitize)
      expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ state: 'running', action: 1 });
      const again = await LogicalUnit.open(dev, { ...CLUSTER, stateDir }, TEST_ENV);
      open.push(again);
      const t = tur();
      executeCommand(again, t);
      expect(t.senseTriple).toEqual([0x2, 0x04, 0x1b]);
      await waitIdle(again);
      expect(existsSync(record)).toBe(false);
      expect((await readBlock(again, 10)).every((b) => b === 0x42)).toBe(true);
    });

    it('a failed sanitize is still failed after a restart; a damaged record still sanitizes', async () => {
      const stateDir = path.join(dir.dir, 'state');
      const dev = fileDevice('f1');
      const first = await LogicalUnit.open(dev, { ...CLUSTER, stateDir }, TEST_ENV);
      await first.close();
      const record = path.join(stateDir, 'sanitize', 'f1.json');
      mkdirSync(path.dirname(record), { recursive: true });
      const failed = {
        version: 1,
        device: 'f1',
        state: 'failed',
        action: 1,
        ause: true,
        count: 1,
        invert: false,
        pattern: '00'.repeat(512),
      };
      writeFileSync(record, JSON.stringify(failed));
      const lu = await LogicalUnit.open(dev, { ...CLUSTER, stateDir }, TEST_ENV);
      open.push(lu);
      expect((await run(lu, tur())).senseTriple).toEqual([0x3, 0x31, 0x03]);
      expect((await run(lu, makeCommand(sanitizeCdb(0x1f)))).status).toBe(ScsiStatus.GOOD);
      expect(existsSync(record)).toBe(false);
      await lu.close();
      open.pop();
      writeFileSync(record, '{ not json');
      const w = await LogicalUnit.open(dev, { ...CLUSTER, stateDir }, TEST_ENV);
      open.push(w);
      await waitIdle(w);
      expect((await readBlock(w, 0)).every((b) => b === 0)).toBe(true);
      expect(existsSync(record)).toBe(false);
    });
  });
});

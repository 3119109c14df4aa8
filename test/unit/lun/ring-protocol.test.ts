/**
 * The ring protocol between session workers and a LUN worker, driven in one thread over
 * real rings (test/helpers/lun-loopback.ts): command and control descriptors take effect
 * in ring order, every control descriptor is acknowledged exactly once and after what it
 * waits for, a full task set answers TASK SET FULL / BUSY (SAM-5 5.3.2), and the session
 * side refuses stale and duplicate completions.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import type { DeviceConfig } from '../../../src/shared/config-types.ts';
import { DescKind, UaEvent, Cpl, CPL_DESC_BYTES, CMD_DESC_BYTES } from '../../../src/shared/ring/descriptors.ts';
import { TmfFunction } from '../../../src/shared/iscsi/pdu.ts';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { SpscRing } from '../../../src/shared/ring/spsc-ring.ts';
import { Slab } from '../../../src/shared/ring/slab.ts';
import { Doorbell } from '../../../src/shared/ring/doorbell.ts';
import { FileStore } from '../../../src/workers/lun/backing/file-store.ts';

// File LUs here stand for slow media: their commands must overlap, so no page-cache
// I/O in place (file-store.ts).
FileStore.inPlaceIo = false;
import { LunChannel } from '../../../src/workers/session/lun-channel.ts';
import { TaskPool, TaskState } from '../../../src/workers/session/task.ts';
import { LunLoopback, type Returned } from '../../helpers/lun-loopback.ts';

const TUR = [0x00, 0, 0, 0, 0, 0];
/** READ(10) of `blocks` blocks at LBA 0. */
const read10 = (blocks: number) => [0x28, 0, 0, 0, 0, 0, 0, 0, blocks, 0];
const REPORT_LUNS_CHANGED = [0x3f, 0x0e];

function ram(name = 'r', extra: Partial<DeviceConfig> = {}): DeviceConfig {
  return { name, backing: { type: 'ram', size: 4 * 1024 * 1024 }, blockSize: 512, readOnly: false, writeCache: 'writeback', vendor: 'SPINDLE', product: 'VDISK', ...extra };
}

function file(dir: string, extra: Partial<DeviceConfig> = {}): DeviceConfig {
  return {
    name: 'f',
    backing: { type: 'file', path: path.join(dir, 'f.img'), size: 4 * 1024 * 1024 },
    blockSize: 512,
    readOnly: false,
    writeCache: 'writeback',
    vendor: 'SPINDLE',
    product: 'VDISK',
    ...extra,
  };
}

/** [sense key, ASC, ASCQ] of fixed-format sense. */
const triple = (r: Returned) => [r.sense[2]! & 0x0f, r.sense[12], r.sense[13]];

let lb: LunLoopback | undefined;
afterEach(async () => {
  await lb?.close();
  lb = undefined;
});

describe('ring protocol: ordering', () => {
  it('a UNIT_ATTENTION descriptor takes effect exactly between the commands around it', async () => {
    lb = await LunLoopback.open([ram()]);
    const n = lb.login(0, 'iqn.2026-11.test:a');
    const first = lb.command(0, n, TUR); // POWER ON (first contact of this identity)
    const before = lb.command(0, n, TUR);
    const ua = lb.control(0, DescKind.UNIT_ATTENTION, n, { luIndex: 0, attribute: UaEvent.REPORTED_LUNS_CHANGED });
    const after = lb.command(0, n, TUR);
    await lb.until(() => lb!.returned.length === 4);
    expect(lb.returned.map((r) => r.id)).toEqual([first, before, ua, after]);
    const [r1, r2, r3, r4] = lb.returned;
    expect(r1!.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(triple(r1!)).toEqual([6, 0x29, 0x00]);
    expect(r2!.status).toBe(ScsiStatus.GOOD);
    expect(r3!.status).toBe(0); // acknowledgement: no status of its own
    expect(r4!.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(triple(r4!)).toEqual([6, ...REPORT_LUNS_CHANGED]);
  });

  it('NEXUS_LOSS is acknowledged once, and the identity returns with I_T NEXUS LOSS OCCURRED', async () => {
    lb = await LunLoopback.open([ram()]);
    const n = lb.login(0, 'iqn.2026-11.test:a');
    lb.command(0, n, TUR);
    const loss = lb.control(0, DescKind.NEXUS_LOSS, n);
    await lb.until(() => lb!.returned.length === 2);
    expect(lb.returned.filter((r) => r.id === loss)).toHaveLength(1);
    // The same initiator port logs in again (a new handle, the same I_T nexus identity).
    const again = lb.login(0, 'iqn.2026-11.test:a');
    expect(again).not.toBe(n);
    const r = await lb.result(lb.command(0, again, TUR));
    expect(triple(r)).toEqual([6, 0x29, 0x07]);
  });

  it('a command for a unit index with no unit gets LOGICAL UNIT NOT SUPPORTED', async () => {
    lb = await LunLoopback.open([ram()]);
    const n = lb.login(0, 'iqn.2026-11.test:a');
    const r = await lb.result(lb.command(0, n, TUR, { luIndex: 7 }));
    expect(r.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(triple(r)).toEqual([5, 0x25, 0x00]);
  });
});

describe('ring protocol: task management', () => {
  it('ABORT TASK SET: the aborted command comes back (without status) before the acknowledgement', async () => {
    lb = await LunLoopback.open((dir) => [file(dir)]);
    const n = lb.login(0, 'iqn.2026-11.test:a');
    await lb.result(lb.command(0, n, TUR)); // consume POWER ON
    const rd = lb.command(0, n, read10(64), { dataIn: 64 * 512 });
    const tmf = lb.control(0, DescKind.TMF, n, { luIndex: 0, attribute: TmfFunction.ABORT_TASK_SET });
    await lb.until(() => lb!.returned.some((r) => r.id === tmf));
    const order = lb.returned.map((r) => r.id);
    expect(order.indexOf(rd)).toBeGreaterThanOrEqual(0);
    expect(order.indexOf(rd)).toBeLessThan(order.indexOf(tmf));
    expect(lb.returned.find((r) => r.id === rd)!.aborted).toBe(true);
  });

  it('ABORT TASK names its command by ring tag and aborts only that one', async () => {
    lb = await LunLoopback.open((dir) => [file(dir)]);
    const n = lb.login(0, 'iqn.2026-11.test:a');
    await lb.result(lb.command(0, n, TUR));
    const a = lb.command(0, n, read10(8), { dataIn: 8 * 512 });
    const b = lb.command(0, n, read10(8), { dataIn: 8 * 512 });
    const tmf = lb.control(0, DescKind.TMF, n, { luIndex: 0, attribute: TmfFunction.ABORT_TASK, refTag: lb.ringTagOf(b) });
    await lb.until(() => [a, b, tmf].every((id) => lb!.returned.some((r) => r.id === id)));
    expect(lb.returned.find((r) => r.id === a)!.aborted).toBe(false);
    expect(lb.returned.find((r) => r.id === a)!.status).toBe(ScsiStatus.GOOD);
    expect(lb.returned.find((r) => r.id === b)!.aborted).toBe(true);
  });

  it('a TMF for a unit index with no unit is acknowledged at once', async () => {
    lb = await LunLoopback.open([ram()]);
    const n = lb.login(0, 'iqn.2026-11.test:a');
    const r = await lb.result(lb.control(0, DescKind.TMF, n, { luIndex: 9, attribute: TmfFunction.LOGICAL_UNIT_RESET }));
    expect(r.kind).toBe(DescKind.TMF);
  });
});

describe('ring protocol: task set full (SAM-5 5.3.2)', () => {
  it('beyond queueDepth: TASK SET FULL for a nexus with commands in the set, BUSY for one without', async () => {
    lb = await LunLoopback.open((dir) => [file(dir, { queueDepth: 2 })]);
    const a = lb.login(0, 'iqn.2026-11.test:a');
    const b = lb.login(0, 'iqn.2026-11.test:b', '400001370001');
    await lb.result(lb.command(0, a, TUR));
    await lb.result(lb.command(0, b, TUR));
    const held = [lb.command(0, a, read10(64), { dataIn: 64 * 512 }), lb.command(0, a, read10(64), { dataIn: 64 * 512 })];
    const full = lb.command(0, a, read10(1), { dataIn: 512 });
    const busy = lb.command(0, b, read10(1), { dataIn: 512 });
    await lb.until(() => [...held, full, busy].every((id) => lb!.returned.some((r) => r.id === id)));
    const status = (id: number) => lb!.returned.find((r) => r.id === id)!.status;
    expect(held.map(status)).toEqual([ScsiStatus.GOOD, ScsiStatus.GOOD]);
    expect(status(full)).toBe(ScsiStatus.TASK_SET_FULL);
    expect(status(busy)).toBe(ScsiStatus.BUSY);
  });
});

describe('ring protocol: completions the session side must refuse', () => {
  /** A LunChannel whose LUN side is played by the test itself. */
  function channelWithFakeLun() {
    const cmd = SpscRing.create(8, CMD_DESC_BYTES);
    const cpl = SpscRing.create(8, CPL_DESC_BYTES);
    const pool = new TaskPool(new Slab(1024 * 1024, 4096, new SharedArrayBuffer(1024 * 1024)));
    const channel = new LunChannel({ cmdRing: cmd.sab, cplRing: cpl.sab, capacity: 8, peerDoorbell: new Doorbell().sab }, pool);
    const stale: number[] = [];
    channel.onStale = (tag) => stale.push(tag);
    const complete = (tag: number, status = 0) => {
      const o = cpl.reserve();
      cpl.view.setUint8(o + Cpl.KIND, DescKind.COMPLETION);
      cpl.view.setUint8(o + Cpl.STATUS, status);
      cpl.view.setUint16(o + Cpl.SENSE_LENGTH, 0, true);
      cpl.view.setUint32(o + Cpl.TAG, tag, true);
      cpl.publish();
    };
    return { channel, pool, complete, stale };
  }

  it('a completion with an old generation, or a duplicate, is dropped and counted; the in-flight count stays exact', () => {
    const { channel, pool, complete, stale } = channelWithFakeLun();
    const done: number[] = [];
    const t = pool.acquire()!;
    t.owner = { onTaskComplete: (x) => done.push(x.status) };
    channel.submit(t, 1);
    expect(channel.pending).toBe(1);
    const tag = t.ringTag;
    // The same pool slot under the previous generation: an answer to an earlier use.
    const previous = ((((tag >>> 16) - 1) & 0x7fff) << 16) | (tag & 0xffff);
    complete(previous, 0x02);
    channel.drain();
    expect(done).toEqual([]);
    expect(t.state).toBe(TaskState.SUBMITTED);
    expect(channel.pending).toBe(1);
    complete(tag, 0x00);
    channel.drain();
    expect(done).toEqual([0x00]);
    expect(channel.pending).toBe(0);
    complete(tag, 0x02); // the same completion again
    channel.drain();
    expect(done).toEqual([0x00]);
    expect(channel.pending).toBe(0);
    expect(channel.staleCompletions).toBe(2);
    expect(stale).toEqual([previous, tag]);
  });

  it('a completion for a task pushed on another channel is refused', () => {
    const a = channelWithFakeLun();
    const b = channelWithFakeLun();
    const t = a.pool.acquire()!;
    t.owner = { onTaskComplete: () => expect.unreachable() };
    a.channel.submit(t, 1);
    // b's LUN side answers with a tag that names a task of a's pool index.
    const u = b.pool.acquire()!;
    b.complete(t.ringTag);
    b.channel.drain();
    expect(u.state).not.toBe(TaskState.FREE);
    expect(b.channel.staleCompletions).toBe(1);
    expect(a.channel.pending).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { NEXUS_SLOTS, NexusSlots, NexusTable, handleWorker, nexusHandle } from '../../../src/shared/ring/nexus-table.ts';
import { WorkerNexusDirectory } from '../../../src/workers/lun/nexus-directory.ts';

const rec = {
  initiatorName: 'iqn.1994-05.com.redhat:host-a',
  isid: Uint8Array.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]),
  targetName: 'iqn.2026-11.io.spindle:t',
  relativeTargetPortId: 3,
  targetPortGroup: 3,
};

describe('NexusTable', () => {
  it('round-trips a record under its handle and refuses a stale generation', () => {
    const t = NexusTable.create();
    t.write(17, 5, rec);
    const id = nexusHandle(2, 5, 17);
    expect(handleWorker(id)).toBe(2);
    expect(t.read(id)).toEqual(rec);
    expect(t.read(nexusHandle(2, 4, 17))).toBeUndefined();
    expect(t.read(nexusHandle(2, 5, 18))).toBeUndefined();
  });

  it('keeps names up to the iSCSI maximum (223 bytes) intact', () => {
    const t = NexusTable.create();
    const long = 'iqn.2026-11.io.spindle:' + 'x'.repeat(200);
    t.write(0, 1, { ...rec, initiatorName: long, targetName: long });
    const r = t.read(nexusHandle(0, 1, 0))!;
    expect(r.initiatorName).toBe(long);
    expect(r.targetName).toBe(long);
  });

  it('NexusSlots hands out every slot once, with fresh generations on reuse', () => {
    const s = new NexusSlots();
    const seen = new Set<number>();
    for (let i = 0; i < NEXUS_SLOTS; i++) {
      const [slot] = s.acquire()!;
      seen.add(slot);
    }
    expect(seen.size).toBe(NEXUS_SLOTS);
    expect(s.acquire()).toBeUndefined();
    s.release(9);
    const [slot, gen] = s.acquire()!;
    expect(slot).toBe(9);
    expect(gen).toBe(2);
  });

  it('the LUN-side directory builds the I_T nexus identity and forgets on loss', () => {
    const t = NexusTable.create();
    t.write(1, 1, rec);
    const d = new WorkerNexusDirectory([NexusTable.create().sab, t.sab]);
    const id = nexusHandle(1, 1, 1);
    const info = d.get(id)!;
    expect(info.initiatorPort).toBe('iqn.1994-05.com.redhat:host-a,i,0x80123456789a');
    expect(info.key).toBe('iqn.1994-05.com.redhat:host-a,i,0x80123456789a|3');
    expect(info.targetPortGroup).toBe(3);
    expect(d.get(id)).toBe(info); // cached
    d.forget(id);
    t.write(1, 2, { ...rec, initiatorName: 'iqn.other' }); // slot reused by a new session
    expect(d.get(id)).toBeUndefined();
    expect(d.get(nexusHandle(1, 2, 1))!.initiatorName).toBe('iqn.other');
  });
});

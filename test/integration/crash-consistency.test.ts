/**
 * Crash consistency, proven (issue 12): the whole target process is killed (SIGKILL) in the
 * middle of a write stream, restarted on the same files, and a verifier checks that
 *   - every write acknowledged under writethrough, with FUA, or before a SYNCHRONIZE
 *     CACHE that completed, is on the medium with its content;
 *   - no block holds a torn mix: each is all-zero (never written) or exactly one write's
 *     content, checksummed per block, so nothing reported written is half there;
 *   - a thin file LU's blocks written before the crash are reported mapped (its allocation
 *     map starts "all mapped" after an unclean stop);
 *   - an APTPL registration acknowledged before the crash is still there.
 * A process kill leaves the page cache to the host, so writeback data would survive too:
 * what this proves is that spindle acknowledges nothing it has not handed to the medium in
 * the order the mode promises, and keeps its own state (map, PR) crash-safe.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Status, connectAndLogin, isidSequence, read10, type Initiator } from '../helpers/initiator.ts';
import { startTarget, startWithConfig, type StartedTarget } from '../helpers/target.ts';
import { prinCdb, proutCdb, proutParams } from '../helpers/scsi-pr.ts';

const BS = 4096;
/** Blocks per write: a multi-block write can tear if anything goes wrong. */
const BLOCKS = 8;
const nextIsid = isidSequence(0xc1, 0x55);

/** A block's content: its LBA, the write's sequence number, random bytes, a SHA-256 of all that. */
function block(lba: number, seq: number): Buffer {
  const b = randomBytes(BS);
  b.writeUInt32BE(lba, 0);
  b.writeUInt32BE(seq, 4);
  createHash('sha256').update(b.subarray(0, BS - 32)).digest().copy(b, BS - 32);
  return b;
}

/** Valid content: all zero (never written), or self-consistent with the given LBA. */
function check(b: Buffer, lba: number): 'zero' | 'written' | 'torn' {
  if (b.every((x) => x === 0)) return 'zero';
  const ok = b.readUInt32BE(0) === lba && createHash('sha256').update(b.subarray(0, BS - 32)).digest().equals(b.subarray(BS - 32));
  return ok ? 'written' : 'torn';
}

function write10(lba: number, blocks: number, fua: boolean): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x2a;
  c[1] = fua ? 0x08 : 0;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

const SYNC_CACHE_10 = Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

let t: StartedTarget | undefined;
afterAll(async () => {
  await t?.stop('SIGKILL');
  if (t !== undefined) rmSync(t.dir, { recursive: true, force: true });
});

interface Acked {
  lun: number;
  lba: number;
  data: Buffer;
  /** Durable when acknowledged (writethrough or FUA), or made durable by a later SYNCHRONIZE CACHE. */
  durable: boolean;
}

describe('SIGKILL in the middle of a write stream', () => {
  it('keeps every acknowledged durable write, tears none, keeps the thin map and APTPL state', async () => {
    t = await startTarget({
      yaml: ({ port, iqn, dir }) => `
logging: { level: info }
stateDir: ${dir}/state
workers: { session: 1, lun: 2 }
devices:
  - name: wt
    file: { path: ${dir}/wt.img, size: 64MiB }
    blockSize: 4096
    writeCache: writethrough
  - name: wb
    file: { path: ${dir}/wb.img, size: 64MiB }
    blockSize: 4096
  - name: thin
    file: { path: ${dir}/thin.img, size: 64MiB }
    blockSize: 4096
    thin: true
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: wt, 1: wb, 2: thin }
`,
    });
    const started = t;
    const pr = await connectAndLogin(started.port, started.iqn, { initiatorName: 'iqn.2026-11.test:pr', isid: nextIsid() });
    // APTPL = 1 registration, acknowledged before the crash.
    const reg = await pr.scsi(proutCdb(0x00, 0), { lun: 0, write: true, edtl: 24, data: proutParams({ saKey: 0xc0ffeen, aptpl: true }) });
    expect(reg.status).toBe(Status.GOOD);

    // Four writers, each streaming 8-block writes to its own LBAs: LUN 0 writethrough,
    // LUN 1 writeback with FUA on every other write plus a SYNCHRONIZE CACHE now and then,
    // LUN 2 thin (writeback, FUA).
    const acked: Acked[] = [];
    let stop = false;
    const writer = async (ini: Initiator, lun: number, first: number): Promise<void> => {
      let pendingSync: Acked[] = [];
      for (let i = 0; !stop; i++) {
        const lba = first + i * BLOCKS;
        if (lba + BLOCKS > 16384) break;
        const fua = lun === 2 || (lun === 1 && i % 2 === 0);
        const data = Buffer.concat(Array.from({ length: BLOCKS }, (_, k) => block(lba + k, i)));
        let r;
        try {
          r = await ini.scsi(write10(lba, BLOCKS, fua), { lun, write: true, edtl: data.length, data });
        } catch {
          return; // the target died under us
        }
        if (r.status !== Status.GOOD) return;
        const a: Acked = { lun, lba, data, durable: lun === 0 || fua };
        acked.push(a);
        if (!a.durable) pendingSync.push(a);
        if (lun === 1 && i % 5 === 4) {
          try {
            const s = await ini.scsi(SYNC_CACHE_10, { lun, edtl: 0 });
            if (s.status === Status.GOOD) for (const p of pendingSync) p.durable = true;
            pendingSync = [];
          } catch {
            return;
          }
        }
      }
    };
    const inis = await Promise.all([0, 1, 2, 3].map((i) => connectAndLogin(started.port, started.iqn, { initiatorName: `iqn.2026-11.test:w${i}`, isid: nextIsid() })));
    const streams = [writer(inis[0]!, 0, 0), writer(inis[1]!, 1, 0), writer(inis[2]!, 2, 0), writer(inis[3]!, 0, 8192)];
    await new Promise((r) => setTimeout(r, 1500));
    expect(acked.length).toBeGreaterThan(20);
    await started.stop('SIGKILL');
    stop = true;
    await Promise.all(streams);
    for (const i of [...inis, pr]) i.close();

    // Same files, same stateDir: a restart after a crash.
    t = await startWithConfig(`${started.dir}/spindle.yaml`, { port: started.port, iqn: started.iqn, dir: started.dir });
    const v = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.test:verify', isid: nextIsid() });
    const read = async (lun: number, lba: number, blocks: number): Promise<Buffer> => {
      const r = await v.scsi(read10(lba, blocks), { lun, read: true, edtl: blocks * BS });
      expect(r.status).toBe(Status.GOOD);
      return r.data;
    };
    // 1. Every durable acknowledged write is there, whole.
    let durable = 0;
    for (const a of acked) {
      if (!a.durable) continue;
      durable++;
      expect((await read(a.lun, a.lba, BLOCKS)).equals(a.data), `LUN ${a.lun} LBA ${a.lba}`).toBe(true);
    }
    expect(durable).toBeGreaterThan(10);
    // 2. No block anywhere in the written areas is torn.
    for (const lun of [0, 1, 2]) {
      for (let lba = 0; lba < 16384; lba += 256) {
        const data = await read(lun, lba, 256);
        for (let k = 0; k < 256; k++) expect(check(data.subarray(k * BS, (k + 1) * BS), lba + k), `LUN ${lun} LBA ${lba + k}`).not.toBe('torn');
      }
    }
    // 3. The thin LU's written blocks are mapped (GET LBA STATUS: provisioning status 0).
    for (const a of acked.filter((x) => x.lun === 2 && x.durable).slice(0, 20)) {
      const c = Buffer.alloc(16);
      c[0] = 0x9e;
      c[1] = 0x12;
      c.writeBigUInt64BE(BigInt(a.lba), 2);
      c.writeUInt32BE(24, 10);
      const r = await v.scsi(c, { lun: 2, read: true, edtl: 24 });
      expect(r.status).toBe(Status.GOOD);
      expect(r.data[8 + 12]! & 0x0f, `thin LBA ${a.lba}`).toBe(0); // first descriptor: mapped
    }
    // 4. The APTPL registration survived (READ KEYS lists it).
    const keys = await v.scsi(prinCdb(0x00), { lun: 0, read: true, edtl: 8192 });
    expect(keys.status).toBe(Status.GOOD);
    expect(keys.data.readUInt32BE(4)).toBe(8);
    expect(keys.data.readBigUInt64BE(8)).toBe(0xc0ffeen);
    v.close();
  });
});

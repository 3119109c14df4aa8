/**
 * Inline I/O on RAM disks and page-cached files (shared/ring/inline-grants.ts): a session worker serves READs
 * and WRITEs of a RAM disk itself once the LUN worker granted the I_T nexus commands of
 * that kind at the unit's epoch. Each case makes a grant exist first (two commands: the
 * first goes to the LUN worker and brings the grant, the second is served inline,
 * which /metrics shows), then changes something a READ or WRITE meets, and checks the
 * next one meets it. Without the invalidation each case checks, that command would be
 * served under the stale grant: GOOD where the answer must be RESERVATION CONFLICT or a
 * unit attention, old data where a COMPARE AND WRITE or a grow changed it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanup, freePort, startTarget, type StartedTarget } from '../helpers/target.ts';
import { TEST_UNIT_READY, connectAndLogin, read10, write10, type Initiator, type ScsiResult } from '../helpers/initiator.ts';
import { TmfFunction } from '../../src/shared/iscsi/pdu.ts';
import { proutCdb, proutParams } from '../helpers/scsi-pr.ts';
import { metric } from '../helpers/metrics.ts';
import { outcomeOf } from '../helpers/cluster-scsi.ts';

const TOKEN = 'inline-token-0123456789';
const BLOCK = 512;
const MiB = 1024 * 1024;
/** COMPARE AND WRITE pauses between its compare and its write (SPINDLE_TEST_CAW_PAUSE_MS). */
const PAUSE_MS = 800;

let t: StartedTarget;
let apiPort: number;
let faults: string;
let a: Initiator;
let b: Initiator;

function config(ctx: { port: number; iqn: string; dir: string }, size: string, thin = true, big = '128MiB'): string {
  return `
clusterId: inline
stateDir: ${ctx.dir}/state
workers: { session: 2, lun: 1 }
api: { listen: "127.0.0.1:${apiPort}", tokenFile: ${ctx.dir}/token }
devices:
  - { name: r, ram: { size: ${size} } }
  - { name: big, ram: { size: ${big} } }
  - { name: f, file: { path: ${ctx.dir}/f.img, size: 8MiB }, writeCache: writeback }
  - { name: fwt, file: { path: ${ctx.dir}/fwt.img, size: 8MiB }, writeCache: writethrough }
${thin ? '  - { name: thin, ram: { size: 8MiB }, thin: true }' : ''}
targets:
  - iqn: ${ctx.iqn}
    portals: ['127.0.0.1:${ctx.port}']
    luns: { 0: r, 2: big, 3: f, 4: fwt${thin ? ', 1: thin' : ''} }
`;
}

beforeAll(async () => {
  apiPort = await freePort();
  faults = path.join(os.tmpdir(), `spindle-inline-faults-${process.pid}`);
  writeFileSync(faults, '');
  t = await startTarget({
    env: { SPINDLE_TEST_FAULTS: '1', SPINDLE_TEST_CAW_PAUSE_MS: String(PAUSE_MS), SPINDLE_FAULT_FILE: faults },
    yaml: (ctx) => {
      writeFileSync(path.join(ctx.dir, 'token'), `${TOKEN}\n`);
      return config(ctx, '8MiB');
    },
  });
  a = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:inline-a' });
  b = await connectAndLogin(t.port, t.iqn, { initiatorName: 'iqn.2026-11.io.spindle:inline-b' });
  // First contact: each nexus's power-on unit attention, out of the way.
  for (const ini of [a, b]) for (const lun of [0, 1, 2, 3, 4]) await ini.scsi(TEST_UNIT_READY, { edtl: 0, lun });
});

afterAll(async () => {
  a?.close();
  b?.close();
  await t?.stop();
  cleanup(t);
});

/** Rewrite the configuration, SIGHUP, and wait until it is applied. */
async function reload(size: string, thin = true, big = '128MiB'): Promise<void> {
  writeFileSync(path.join(t.dir, 'spindle.yaml'), config({ port: t.port, iqn: t.iqn, dir: t.dir }, size, thin, big));
  const before = t.output().length;
  t.proc.kill('SIGHUP');
  const deadline = Date.now() + 20_000;
  while (!t.output().slice(before).includes('configuration reloaded')) {
    if (Date.now() > deadline) throw new Error(`no reload:\n${t.output().slice(before)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function inlineCount(kind: 'reads' | 'writes', device = 'r'): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${apiPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return metric(await res.text(), `spindle_lu_inline_${kind}_total`, { device }) ?? 0;
}
const inlineReads = (): Promise<number> => inlineCount('reads');

function read(ini: Initiator, lba: number, blocks = 1, lun = 0): Promise<ScsiResult> {
  return ini.scsi(read10(lba, blocks), { read: true, edtl: blocks * BLOCK, rawUnitAttention: true, lun });
}

function tryWrite(ini: Initiator, lba: number, data: Buffer, lun = 0): Promise<ScsiResult> {
  return ini.scsi(write10(lba, data.length / BLOCK), { write: true, data, edtl: data.length, rawUnitAttention: true, lun });
}

async function write(ini: Initiator, lba: number, data: Buffer, lun = 0): Promise<void> {
  expect(outcomeOf(await tryWrite(ini, lba, data, lun)), `WRITE at ${lba}`).toBe('GOOD');
}

/** Two READs of `lba` through `ini`: the second is served inline (the counter moves). */
async function granted(ini: Initiator, lba: number): Promise<void> {
  expect(outcomeOf(await read(ini, lba)), 'READ that brings the grant').toBe('GOOD');
  const before = await inlineReads();
  expect(outcomeOf(await read(ini, lba)), 'READ under the grant').toBe('GOOD');
  expect(await inlineReads(), 'the second READ was answered by the session worker').toBe(before + 1);
}

/** Two WRITEs of `data` at `lba` through `ini`: the second is served inline. */
async function grantedWrite(ini: Initiator, lba: number, data: Buffer): Promise<void> {
  await write(ini, lba, data);
  const before = await inlineCount('writes');
  await write(ini, lba, data);
  expect(await inlineCount('writes'), 'the second WRITE was served by the session worker').toBe(before + 1);
}

const filled = (byte: number, blocks = 1): Buffer => Buffer.alloc(blocks * BLOCK, byte);

describe('inline READs and WRITEs of a RAM disk', () => {
  it('return what the LUN worker wrote, for every READ size and an EDTL below the transfer', async () => {
    const data = Buffer.alloc(64 * BLOCK);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
    await write(a, 1000, data);
    await granted(a, 1000);
    const before = await inlineReads();
    for (const blocks of [1, 8, 64]) {
      const r = await read(a, 1000, blocks);
      expect(outcomeOf(r)).toBe('GOOD');
      expect(r.data.equals(data.subarray(0, blocks * BLOCK)), `${blocks} blocks`).toBe(true);
    }
    // EDTL below the transfer: the data that fits and an overflow residual (RFC 7143 11.4.5.1).
    const short = await a.scsi(read10(1000, 8), { read: true, edtl: 4 * BLOCK });
    expect(outcomeOf(short)).toBe('GOOD');
    expect(short.data.equals(data.subarray(0, 4 * BLOCK))).toBe(true);
    expect([short.overflow, short.residual]).toEqual([true, 4 * BLOCK]);
    expect(await inlineReads()).toBe(before + 4);
    // Out of range: the LUN worker answers, with its sense (ILLEGAL REQUEST, LBA OUT OF RANGE).
    const beyond = await read(a, (8 * MiB) / BLOCK, 1);
    expect(outcomeOf(beyond)).toBe('status 0x2 sense 05/21/00');
  });

  it('a reservation taken by another nexus voids the grant: RESERVATION CONFLICT', async () => {
    await granted(a, 0);
    expect(outcomeOf(await b.scsi(proutCdb(0x00, 0), { write: true, data: proutParams({ saKey: 0xbn }), edtl: 24 }))).toBe('GOOD');
    // RESERVE, EXCLUSIVE ACCESS (type 3): reads by other nexuses conflict (SPC-4 5.14.1).
    expect(outcomeOf(await b.scsi(proutCdb(0x01, 3), { write: true, data: proutParams({ key: 0xbn }), edtl: 24 }))).toBe('GOOD');
    expect(outcomeOf(await read(a, 0))).toBe('status 0x18');
    expect(outcomeOf(await read(a, 0))).toBe('status 0x18');
    // Released (and unregistered): reads serve again, the long way first.
    expect(outcomeOf(await b.scsi(proutCdb(0x02, 3), { write: true, data: proutParams({ key: 0xbn }), edtl: 24 }))).toBe('GOOD');
    expect(outcomeOf(await b.scsi(proutCdb(0x00, 0), { write: true, data: proutParams({ key: 0xbn }), edtl: 24 }))).toBe('GOOD');
    await granted(a, 0);
  });

  it('a LOGICAL UNIT RESET by another nexus voids the grant: the next READ reports the unit attention', async () => {
    await granted(a, 0);
    const rsp = await b.tmf({ fn: TmfFunction.LOGICAL_UNIT_RESET, lun: 0 });
    expect(rsp.bhs[2]).toBe(0); // FUNCTION COMPLETE
    // SAM-5 6.3.3: BUS DEVICE RESET FUNCTION OCCURRED for the nexuses that did not ask.
    expect(outcomeOf(await read(a, 0))).toBe('status 0x2 sense 06/29/03');
    await b.scsi(TEST_UNIT_READY, { edtl: 0, rawUnitAttention: true });
    await granted(a, 0);
  });

  it('a READ sent while COMPARE AND WRITE runs waits for it and returns its data (SBC-4 5.3)', async () => {
    const LBA = 2000;
    await write(a, LBA, filled(0x11));
    await granted(a, LBA);
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x89;
    cdb.writeBigUInt64BE(BigInt(LBA), 2);
    cdb[13] = 1;
    const caw = b.scsi(cdb, { write: true, edtl: 2 * BLOCK, data: Buffer.concat([filled(0x11), filled(0x22)]), timeoutMs: 30_000 });
    // Inside the pause between the compare and the write.
    await new Promise((r) => setTimeout(r, PAUSE_MS / 2));
    const t0 = performance.now();
    const r = await read(a, LBA);
    const waited = performance.now() - t0;
    expect(outcomeOf(await caw), 'COMPARE AND WRITE').toBe('GOOD');
    expect(outcomeOf(r)).toBe('GOOD');
    expect(r.data.equals(filled(0x22)), 'the READ saw the written data, not the compared data').toBe(true);
    expect(waited, 'the READ was held until the COMPARE AND WRITE ended').toBeGreaterThan(PAUSE_MS / 4);
  });

  it('WRITEs are served inline too, and the LUN worker sees what they wrote', async () => {
    const LBA = 3000;
    await grantedWrite(a, LBA, filled(0x41, 8));
    const before = await inlineCount('writes');
    const data = Buffer.alloc(8 * BLOCK);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    await write(a, LBA, data);
    expect(await inlineCount('writes')).toBe(before + 1);
    // Read back inline, and compared by COMPARE AND WRITE on the LUN worker.
    expect((await read(a, LBA, 8)).data.equals(data)).toBe(true);
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x89;
    cdb.writeBigUInt64BE(BigInt(LBA), 2);
    cdb[13] = 1;
    const caw = await a.scsi(cdb, { write: true, edtl: 2 * BLOCK, data: Buffer.concat([data.subarray(0, BLOCK), filled(0x42)]), timeoutMs: 30_000 });
    expect(outcomeOf(caw), 'the LUN worker compared the block written inline').toBe('GOOD');
    expect((await read(a, LBA)).data.equals(filled(0x42))).toBe(true);
  });

  it('a WRITE EXCLUSIVE reservation by another nexus: WRITEs conflict, READs still serve', async () => {
    await grantedWrite(a, 0, filled(0x51));
    await granted(a, 0);
    expect(outcomeOf(await b.scsi(proutCdb(0x00, 0), { write: true, data: proutParams({ saKey: 0xcn }), edtl: 24 }))).toBe('GOOD');
    // RESERVE, WRITE EXCLUSIVE (type 1): other nexuses may read, not write (SPC-4 5.14.1).
    expect(outcomeOf(await b.scsi(proutCdb(0x01, 1), { write: true, data: proutParams({ key: 0xcn }), edtl: 24 }))).toBe('GOOD');
    expect(outcomeOf(await tryWrite(a, 0, filled(0x52)))).toBe('status 0x18');
    expect(outcomeOf(await tryWrite(a, 0, filled(0x52)))).toBe('status 0x18');
    await granted(a, 0);
    expect((await read(a, 0)).data.equals(filled(0x51)), 'the refused WRITEs changed nothing').toBe(true);
    expect(outcomeOf(await b.scsi(proutCdb(0x02, 1), { write: true, data: proutParams({ key: 0xcn }), edtl: 24 }))).toBe('GOOD');
    expect(outcomeOf(await b.scsi(proutCdb(0x00, 0), { write: true, data: proutParams({ key: 0xcn }), edtl: 24 }))).toBe('GOOD');
    await grantedWrite(a, 0, filled(0x53));
  });

  it('a thin RAM disk never gets inline WRITE: the LUN worker maps what they write', async () => {
    const before = await inlineCount('writes', 'thin');
    for (let i = 0; i < 3; i++) await write(a, 64, filled(0x61, 8), 1);
    expect(await inlineCount('writes', 'thin')).toBe(before);
    // GET LBA STATUS (SBC-4 5.8): the written blocks are mapped (status 0).
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x9e;
    cdb[1] = 0x12;
    cdb.writeBigUInt64BE(64n, 2);
    cdb.writeUInt32BE(24, 10);
    const st = await a.scsi(cdb, { read: true, edtl: 24, lun: 1 });
    expect(outcomeOf(st)).toBe('GOOD');
    expect(st.data.readBigUInt64BE(8)).toBe(64n);
    expect(st.data[20]! & 0x0f, 'mapped').toBe(0);
    // READs of a thin disk are served inline like any other.
    await read(a, 64, 1, 1);
    const r0 = await inlineCount('reads', 'thin');
    expect((await read(a, 64, 8, 1)).data.equals(filled(0x61, 8))).toBe(true);
    expect(await inlineCount('reads', 'thin')).toBe(r0 + 1);
  });

  it('after a grow the session worker reads the new memory, never the old copy', async () => {
    await write(a, 0, filled(0x31));
    await granted(a, 0);
    await reload('16MiB');
    expect(outcomeOf(await read(a, 0))).toBe('status 0x2 sense 06/2a/09'); // CAPACITY DATA HAS CHANGED
    // Written after the grow (into the new memory), then read twice: the long way, then inline.
    await write(a, 0, filled(0x32));
    await granted(a, 0);
    expect((await read(a, 0)).data.equals(filled(0x32))).toBe(true);
    const last = (16 * MiB) / BLOCK - 1;
    await write(a, last, filled(0x33));
    await granted(a, last);
    expect((await read(a, last)).data.equals(filled(0x33))).toBe(true);
  });
});

describe('a buffered file', () => {
  it('READs and write-back WRITEs are served through the page cache, and land in the file', async () => {
    const F = 3;
    const data = Buffer.alloc(8 * BLOCK);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
    for (let i = 0; i < 2; i++) await write(a, 40, data, F);
    const w0 = await inlineCount('writes', 'f');
    await write(a, 40, data, F);
    expect(await inlineCount('writes', 'f'), 'a WRITE under the grant').toBe(w0 + 1);
    await read(a, 40, 8, F);
    const r0 = await inlineCount('reads', 'f');
    const back = await read(a, 40, 8, F);
    expect(back.data.equals(data)).toBe(true);
    expect(await inlineCount('reads', 'f'), 'a READ under the grant').toBe(r0 + 1);
    // In the file itself (the page cache every reader of the file sees).
    expect(readFileSync(path.join(t.dir, 'f.img')).subarray(40 * BLOCK, 48 * BLOCK).equals(data)).toBe(true);
    // FUA: the data must reach the medium before status, which the LUN worker does.
    const fua = write10(40, 8);
    fua[1] = 0x08;
    const w1 = await inlineCount('writes', 'f');
    expect(outcomeOf(await a.scsi(fua, { write: true, data, edtl: data.length, lun: F }))).toBe('GOOD');
    expect(await inlineCount('writes', 'f'), 'a FUA WRITE goes to the LUN worker').toBe(w1);
  });

  it('a write-through file gets no WRITE grants (every WRITE waits for the medium); its READs are served', async () => {
    const F = 4;
    const w0 = await inlineCount('writes', 'fwt');
    for (let i = 0; i < 3; i++) await write(a, 8, filled(0x71, 8), F);
    expect(await inlineCount('writes', 'fwt')).toBe(w0);
    await read(a, 8, 8, F);
    const r0 = await inlineCount('reads', 'fwt');
    expect((await read(a, 8, 8, F)).data.equals(filled(0x71, 8))).toBe(true);
    expect(await inlineCount('reads', 'fwt')).toBe(r0 + 1);
  });
});

describe('the memory or the owner changing under inline commands', () => {
  it('a grow under a stream of inline WRITE loses none of those acknowledged', async () => {
    const BIG = 2;
    const w = (lba: number): Promise<ScsiResult> => tryWrite(a, lba, filled(lba & 0xff || 1), BIG);
    // Grants first (a WRITE earns one, the next is served inline).
    for (let i = 0; i < 2; i++) expect(outcomeOf(await w(i))).toBe('GOOD');
    const acked: number[] = [];
    let stop = false;
    let lba = 2;
    const stream = (async () => {
      while (!stop) {
        const r = await w(lba);
        if (r.status === 0) acked.push(lba);
        else expect(outcomeOf(r), 'only the capacity change may interrupt').toBe('status 0x2 sense 06/2a/09');
        lba = (lba + 1) % ((128 * MiB) / BLOCK);
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    // 128 MiB copied into a new 512 MiB memory while the WRITEs go on.
    await reload('16MiB', true, '512MiB');
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await stream;
    expect(acked.length).toBeGreaterThan(50);
    let lost = 0;
    for (const x of acked) if (!(await read(a, x, 1, BIG)).data.equals(filled(x & 0xff || 1))) lost++;
    expect(lost, `acknowledged WRITEs lost of ${acked.length}`).toBe(0);
  });

  it('a crashed LUN worker: nothing is served under its grants until its successor answers', async () => {
    await granted(a, 0);
    const mark = t.output().length;
    appendFileSync(faults, 'crash lun 0\n');
    while (!/"msg":"worker ended unexpectedly/.test(t.output().slice(mark))) await new Promise((r) => setTimeout(r, 5));
    // The successor's units are new to every nexus: the first command meets a unit
    // attention (or the retryable end of a command the dead worker held), never GOOD.
    const d0 = await inlineReads();
    const r = await read(a, 0);
    expect(await inlineReads(), 'not served under the dead worker\'s grant').toBe(d0);
    expect(outcomeOf(r)).toMatch(/^status 0x2 sense 06\/29\/0[04]$/);
    while (!/"worker":"lun-0"[^\n]*"msg":"worker replaced"/.test(t.output().slice(mark))) await new Promise((r) => setTimeout(r, 20));
    for (const lun of [0, 1, 2, 3, 4]) for (let i = 0; i < 2; i++) await a.scsi(TEST_UNIT_READY, { edtl: 0, lun, rawUnitAttention: true });
    await granted(a, 0);
  });
});

describe('a RAM disk removed by a reload', () => {
  it('is let go everywhere: added back under its name, it is a fresh disk of zeros', async () => {
    await write(a, 5, filled(0x77), 1);
    await read(a, 5, 1, 1);
    expect((await read(a, 5, 1, 1)).data.equals(filled(0x77))).toBe(true);
    await reload('16MiB', false, '512MiB');
    await reload('16MiB', true, '512MiB');
    // The LUN inventory changed twice: REPORTED LUNS DATA HAS CHANGED, then a new unit's power-on.
    for (let i = 0; i < 3; i++) await a.scsi(TEST_UNIT_READY, { edtl: 0, lun: 1, rawUnitAttention: true });
    for (let i = 0; i < 2; i++) {
      const r = await read(a, 5, 1, 1);
      expect(outcomeOf(r)).toBe('GOOD');
      expect(r.data.equals(filled(0)), `read ${i}`).toBe(true);
    }
  });
});

describe('SPINDLE_INLINE_IO=0', () => {
  it('sends every READ and WRITE to the LUN worker', async () => {
    const port = apiPort;
    apiPort = await freePort();
    const off = await startTarget({
      env: { SPINDLE_INLINE_IO: '0' },
      yaml: (ctx) => {
        writeFileSync(path.join(ctx.dir, 'token'), `${TOKEN}\n`);
        return config(ctx, '8MiB');
      },
    });
    const ini = await connectAndLogin(off.port, off.iqn);
    try {
      for (let i = 0; i < 5; i++) expect(outcomeOf(await ini.scsi(read10(0, 1), { read: true, edtl: BLOCK }))).toBe('GOOD');
      const res = await fetch(`http://127.0.0.1:${apiPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const text = await res.text();
      // Five, and the retry of the first one's power-on unit attention.
      expect(metric(text, 'spindle_lu_reads_total', { device: 'r' })).toBeGreaterThanOrEqual(5);
      expect(metric(text, 'spindle_lu_inline_reads_total', { device: 'r' })).toBe(0);
      for (let i = 0; i < 3; i++) expect(outcomeOf(await ini.scsi(write10(0, 1), { write: true, data: filled(1), edtl: BLOCK }))).toBe('GOOD');
      const after = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      expect(metric(after, 'spindle_lu_writes_total', { device: 'r' })).toBe(3);
      expect(metric(after, 'spindle_lu_inline_writes_total', { device: 'r' })).toBe(0);
    } finally {
      ini.close();
      await off.stop();
      cleanup(off);
      apiPort = port;
    }
  });
});

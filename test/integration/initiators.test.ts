/**
 * The real target driven by real initiators: libiscsi's command-line tools and QEMU's
 * iSCSI block driver (qemu-img), against RAM and file backed LUNs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanup, startTarget, type StartedTarget } from '../helpers/target.ts';
import { run } from '../helpers/run.ts';

let t: StartedTarget;

beforeAll(async () => {
  t = await startTarget();
});

afterAll(async () => {
  const code = await t?.stop('SIGTERM');
  cleanup(t);
  // Graceful shutdown is part of the contract: SIGTERM exits 0.
  expect(code).toBe(0);
});

describe('discovery and identification', () => {
  it('iscsi-ls discovers the target and its LUNs', async () => {
    const r = await run('iscsi-ls', ['-s', `iscsi://127.0.0.1:${t.port}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Target:${t.iqn} Portal:127.0.0.1:${t.port},1`);
    // iscsi-ls prints (last LBA x block size) in MiB, rounded down: 64 MiB shows as 63M.
    expect(r.stdout).toMatch(/Lun:0\s+Type:DIRECT_ACCESS \(Size:63M\)/);
    expect(r.stdout).toMatch(/Lun:1\s+Type:DIRECT_ACCESS \(Size:31M\)/);
  });

  it('iscsi-inq reports standard INQUIRY data', async () => {
    const r = await run('iscsi-inq', [t.url(0)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Peripheral Device Type:DIRECT_ACCESS');
    expect(r.stdout).toContain('Vendor:SPINDLE');
    expect(r.stdout).toContain('CmdQue:1');
  });

  it('iscsi-inq reports the same NAA designator on every query (derived, stable)', async () => {
    const a = await run('iscsi-inq', ['-e', '1', '-c', '131', t.url(0)]);
    const b = await run('iscsi-inq', ['-e', '1', '-c', '131', t.url(0)]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/Designator Type:\(3\) NAA/);
    expect(a.stdout).toBe(b.stdout);
    const other = await run('iscsi-inq', ['-e', '1', '-c', '131', t.url(1)]);
    expect(other.stdout).not.toBe(a.stdout);
  });

  it('iscsi-readcapacity16 reports size and block length for 512 and 4096-byte LUNs', async () => {
    const r0 = await run('iscsi-readcapacity16', [t.url(0)]);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r0.stdout).toContain('LOGICAL BLOCK LENGTH IN BYTES:512');
    expect(r0.stdout).toContain(`Total size:${64 * 1024 * 1024}`);
    const r1 = await run('iscsi-readcapacity16', [t.url(1)]);
    expect(r1.stdout).toContain('LOGICAL BLOCK LENGTH IN BYTES:4096');
    expect(r1.stdout).toContain(`Total size:${32 * 1024 * 1024}`);
  });

  it('a LUN that is not mapped fails with LOGICAL UNIT NOT SUPPORTED', async () => {
    const r = await run('iscsi-inq', [t.url(7)]);
    // libiscsi refuses to use a LUN whose INQUIRY says "not connected" (qualifier 011b).
    expect(r.code).not.toBe(0);
  });

  it('an unknown target name fails login', async () => {
    const r = await run('iscsi-inq', [`iscsi://127.0.0.1:${t.port}/iqn.2026-11.io.spindle:nope/0`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/not found|Target not found|failed/i);
  });
});

describe('data round trips through qemu-img', () => {
  it('64 MiB of random data written with qemu-img convert compares equal', async () => {
    const src = path.join(t.dir, 'random.img');
    writeFileSync(src, randomBytes(64 * 1024 * 1024));
    const conv = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, t.url(0)]);
    expect(conv.code, conv.stderr).toBe(0);
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, t.url(0)]);
    expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
    expect(cmp.stdout).toContain('Images are identical');
    // A compare that can fail: flip one byte in the source and expect a mismatch.
    const buf = readFileSync(src);
    buf[12_345_678]! ^= 0xff;
    writeFileSync(src, buf);
    const bad = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, t.url(0)]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('Content mismatch at offset');
  });

  it('the file-backed 4096-byte LUN keeps 16 MiB written through qemu-img', async () => {
    const src = path.join(t.dir, 'random16.img');
    writeFileSync(src, randomBytes(16 * 1024 * 1024));
    const conv = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, t.url(1)]);
    expect(conv.code, conv.stderr).toBe(0);
    const back = path.join(t.dir, 'back.img');
    const rd = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', t.url(1), back]);
    expect(rd.code, rd.stderr).toBe(0);
    const got = readFileSync(back);
    expect(got.length).toBe(32 * 1024 * 1024);
    expect(got.subarray(0, 16 * 1024 * 1024).equals(readFileSync(src))).toBe(true);
    // The backing file itself holds the data (file backing store, not a cache).
    const onDisk = readFileSync(path.join(t.dir, 'file0.img'));
    expect(onDisk.subarray(0, 16 * 1024 * 1024).equals(readFileSync(src))).toBe(true);
  });

  it('qemu-img bench with queue depth 32 completes reads and writes', async () => {
    const w = await run('qemu-img', ['bench', '-f', 'raw', '-w', '-c', '2000', '-d', '32', '-s', '4096', t.url(0)]);
    expect(w.code, w.stderr).toBe(0);
    const r = await run('qemu-img', ['bench', '-f', 'raw', '-c', '2000', '-d', '32', '-s', '131072', t.url(0)]);
    expect(r.code, r.stderr).toBe(0);
  });
});

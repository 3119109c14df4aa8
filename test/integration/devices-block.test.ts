/**
 * Block devices as backing (`block: { path }`) on the real target, with loop devices
 * (losetup; the tests need root) and real initiators: the size and geometry come from the
 * device and a wrong configuration is refused at start naming the device and both sizes;
 * data written through qemu-img lands on the device with direct I/O; UNMAP deallocates the
 * space under a loop device; and a device whose storage fails gives MEDIUM ERROR sense,
 * logged once per burst, without bringing the target down.
 *
 * Every loop device, mount and file made here is removed in afterAll, also when a test
 * fails; the file is skipped, with the reason, where losetup cannot be used.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Status,
  TEST_UNIT_READY,
  connectAndLogin,
  inquiry,
  read10,
  write10,
  type Initiator,
  type ScsiResult,
} from '../helpers/initiator.ts';
import { run } from '../helpers/run.ts';
import { cleanup, freePort, startWithConfig, type StartedTarget } from '../helpers/target.ts';

/** Why loop devices cannot be used here, or null. */
function loopUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root (losetup needs it)';
  try {
    execFileSync('losetup', ['-f'], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `losetup -f failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
}
const unavailable = loopUnavailable();
const IQN = 'iqn.2026-11.io.spindle:blk';
const MiB = 1024 * 1024;

const work = mkdtempSync(path.join(os.tmpdir(), 'spindle-blk-'));
const loops: string[] = [];
const mounts: string[] = [];
const targets: StartedTarget[] = [];

/** Attach `file` to a free loop device (optionally with a logical block size). */
function attach(file: string, blockSize?: number): string {
  const args = ['-f', '--show', ...(blockSize === undefined ? [] : ['-b', String(blockSize)]), file];
  const dev = execFileSync('losetup', args).toString().trim();
  loops.push(dev);
  return dev;
}

function sparseFile(name: string, bytes: number): string {
  const file = path.join(work, name);
  writeFileSync(file, '');
  execFileSync('truncate', ['-s', String(bytes), file]);
  return file;
}

afterAll(async () => {
  // Targets first (they hold the devices open), then devices, mounts, files.
  for (const t of targets) {
    try {
      await t.stop('SIGTERM');
    } catch {
      /* already gone */
    }
    cleanup(t);
  }
  for (const dev of loops.reverse()) {
    try {
      execFileSync('losetup', ['-d', dev], { stdio: 'ignore' });
    } catch {
      /* detached already */
    }
  }
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', [m], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
  }
  for (const dev of loops) {
    try {
      execFileSync('losetup', ['-d', dev], { stdio: 'ignore' }); // those under a mount
    } catch {
      /* detached already */
    }
  }
  rmSync(work, { recursive: true, force: true });
});

/** Start a target with `devices` (YAML list items); `t` undefined when it failed to start, with its output. */
async function serve(devices: string, luns: string): Promise<{ t?: StartedTarget; output: string }> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(work, 'target-'));
  const cfg = path.join(dir, 'spindle.yaml');
  writeFileSync(
    cfg,
    `clusterId: test
stateDir: ${dir}/state
workers: { session: 1, lun: 1 }
devices:
${devices}
targets:
  - iqn: ${IQN}
    portals: ['127.0.0.1:${port}']
    luns: ${luns}
`,
  );
  try {
    const t = await startWithConfig(cfg, { port, iqn: IQN, dir, readyTimeoutMs: 20_000 });
    targets.push(t);
    return { t, output: t.output() };
  } catch (err) {
    return { output: String((err as Error).message) };
  }
}

const sense = (r: ScsiResult): [number, number, number] => [r.sense[2]! & 0x0f, r.sense[12]!, r.sense[13]!];

describe.skipIf(unavailable !== null)(
  `block devices${unavailable === null ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    describe('refused at start, naming the device and the sizes', () => {
      let dev64: string;
      let dev4k: string;
      beforeAll(() => {
        dev64 = attach(sparseFile('64m.img', 64 * MiB));
        dev4k = attach(sparseFile('4k.img', 16 * MiB), 4096);
      });

      it('a configured size larger than the device (the issue: 128 MiB on a 64 MiB device)', async () => {
        const r = await serve(`  - { name: big, block: { path: ${dev64}, size: 128MiB } }`, '{ 0: big }');
        expect(r.t).toBeUndefined();
        expect(r.output).toContain(`block device ${dev64}`);
        expect(r.output).toContain(
          'holds 67108864 bytes (64 MiB), less than the configured size 134217728 bytes (128 MiB)',
        );
      });

      it('a smaller size without prefix', async () => {
        const r = await serve(`  - { name: part, block: { path: ${dev64}, size: 32MiB } }`, '{ 0: part }');
        expect(r.t).toBeUndefined();
        expect(r.output).toContain('more than the configured size 33554432 bytes (32 MiB)');
        expect(r.output).toContain('set prefix: true');
      });

      it('a logical block size other than blockSize', async () => {
        const r = await serve(`  - { name: bs, block: { path: ${dev4k} } }`, '{ 0: bs }');
        expect(r.t).toBeUndefined();
        expect(r.output).toContain(`${dev4k}`);
        expect(r.output).toContain(
          'has 4096-byte logical blocks, but the device is configured with blockSize 512: set blockSize: 4096',
        );
      });

      it('a block device configured as a file', async () => {
        const r = await serve(`  - { name: f, file: { path: ${dev64}, size: 64MiB } }`, '{ 0: f }');
        expect(r.t).toBeUndefined();
        expect(r.output).toContain(`${dev64} is a block device: configure it as`);
      });
    });

    describe('serving loop devices', () => {
      let t: StartedTarget;
      let ini: Initiator;
      let fileA: string;
      let devA: string;
      beforeAll(async () => {
        fileA = sparseFile('a.img', 64 * MiB);
        devA = attach(fileA);
        const devB = attach(sparseFile('b.img', 32 * MiB), 4096);
        const r = await serve(
          `  - { name: blk, block: { path: ${devA} } }
  - { name: pre, block: { path: ${devB}, size: 8MiB, prefix: true }, blockSize: 4096, thin: false }`,
          '{ 0: blk, 1: pre }',
        );
        if (r.t === undefined) throw new Error(r.output);
        t = r.t;
        ini = await connectAndLogin(t.port, IQN, { keys: [['MaxRecvDataSegmentLength', '262144']] });
      });
      afterAll(() => ini?.close());

      const scsi = (
        lun: number,
        cdb: Buffer,
        o: { edtl?: number; data?: Buffer } = {},
      ): Promise<ScsiResult> =>
        ini.scsi(cdb, {
          lun,
          edtl: o.data?.length ?? o.edtl ?? 0,
          read: o.data === undefined && (o.edtl ?? 0) > 0,
          write: o.data !== undefined,
          ...(o.data === undefined ? {} : { data: o.data }),
        });

      it('size and block size come from the device; a prefix exports its first bytes only; direct I/O by default', async () => {
        const a = await run('iscsi-readcapacity16', [t.url(0)]);
        expect(a.stdout).toContain('Total size:67108864');
        expect(a.stdout).toContain('LOGICAL BLOCK LENGTH IN BYTES:512');
        expect(a.stdout).toContain('LBPME:1 LBPRZ:1'); // the loop device discards: thin
        const b = await run('iscsi-readcapacity16', [t.url(1)]);
        expect(b.stdout).toContain('Total size:8388608');
        expect(b.stdout).toContain('LOGICAL BLOCK LENGTH IN BYTES:4096');
        expect(b.stdout).toContain('LBPME:0');
        expect(t.output()).toMatch(/"device":"blk","backing":"block","blocks":131072,"direct":true/);
      });

      it('VPD pages report rotation (loop devices say rotational), provisioning and the discard granularity', async () => {
        await ini.scsi(TEST_UNIT_READY, { lun: 0, edtl: 0 });
        const b1 = await scsi(0, Buffer.from([0x12, 1, 0xb1, 0, 64, 0]), { edtl: 64 });
        const rotational =
          readFileSync(`/sys/class/block/${path.basename(devA)}/queue/rotational`, 'utf8').trim() === '1';
        expect(b1.data.readUInt16BE(4)).toBe(rotational ? 0x0000 : 0x0001);
        const b2 = await scsi(0, Buffer.from([0x12, 1, 0xb2, 0, 64, 0]), { edtl: 64 });
        expect([b2.data[5]! & 0xe0, (b2.data[5]! >> 2) & 0x07, b2.data[6]! & 0x07]).toEqual([0xe0, 1, 2]); // LBPU LBPWS LBPWS10, LBPRZ, thin
        const b0 = await scsi(0, Buffer.from([0x12, 1, 0xb0, 0, 64, 0]), { edtl: 64 });
        const granularity =
          Number(readFileSync(`/sys/class/block/${path.basename(devA)}/queue/discard_granularity`, 'utf8')) /
          512;
        expect(b0.data.readUInt32BE(20)).toBeGreaterThan(0); // MAXIMUM UNMAP LBA COUNT
        expect(b0.data.readUInt32BE(28)).toBe(Math.max(granularity, 1)); // OPTIMAL UNMAP GRANULARITY
      });

      it('qemu-img writes land on the device; FUA and SYNCHRONIZE CACHE reach it', async () => {
        const src = path.join(work, 'r16');
        const data = randomBytes(16 * MiB);
        writeFileSync(src, data);
        const r = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, t.url(0)]);
        expect(r.code, r.stderr).toBe(0);
        const onDevice = Buffer.alloc(16 * MiB);
        const fd = openSync(devA, 'r');
        try {
          readSync(fd, onDevice, 0, onDevice.length, 0);
        } finally {
          closeSync(fd);
        }
        expect(onDevice.equals(data)).toBe(true);
        const fua = write10(4096, 8);
        fua[1] = 0x08;
        expect((await scsi(0, fua, { data: randomBytes(4096) })).status).toBe(Status.GOOD);
        expect((await scsi(0, Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).status).toBe(Status.GOOD);
      });

      it('UNMAP and WRITE SAME with UNMAP give the space back under the device; the range reads zeros', async () => {
        const lba = (32 * MiB) / 512;
        const chunk = 256 * 1024;
        for (let i = 0; i < 16; i++) {
          const w = await scsi(0, write10(lba + (i * chunk) / 512, chunk / 512), {
            data: randomBytes(chunk),
          });
          expect(w.status).toBe(Status.GOOD);
        }
        execFileSync('sync');
        const before = statSync(fileA).blocks * 512;
        const list = Buffer.alloc(24);
        list.writeUInt16BE(22, 0);
        list.writeUInt16BE(16, 2);
        list.writeBigUInt64BE(BigInt(lba), 8);
        list.writeUInt32BE((2 * MiB) / 512, 16);
        const unmap = await scsi(0, Buffer.from([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]), { data: list });
        expect(unmap.status).toBe(Status.GOOD);
        const ws = Buffer.alloc(16);
        ws[0] = 0x93;
        ws[1] = 0x08; // UNMAP
        ws.writeBigUInt64BE(BigInt(lba + (2 * MiB) / 512), 2);
        ws.writeUInt32BE((2 * MiB) / 512, 10);
        expect((await scsi(0, ws, { data: Buffer.alloc(512) })).status).toBe(Status.GOOD);
        execFileSync('sync');
        const after = statSync(fileA).blocks * 512;
        expect(before - after).toBeGreaterThanOrEqual(4 * MiB - 64 * 1024);
        const back = await scsi(0, read10(lba, 256), { edtl: 256 * 512 });
        expect(back.data.every((x) => x === 0)).toBe(true);
      });
    });

    describe('a device whose storage fails', () => {
      let t: StartedTarget;
      let ini: Initiator;
      let mnt: string;
      beforeAll(async () => {
        // A loop device over a file on an ext4 file system (itself on a loop device); shutting
        // that file system down makes every I/O of the loop device fail with EIO.
        const fsDev = attach(sparseFile('fs.img', 64 * MiB));
        execFileSync('mkfs.ext4', ['-q', fsDev]);
        mnt = path.join(work, 'mnt');
        mkdirSync(mnt);
        execFileSync('mount', [fsDev, mnt]);
        mounts.push(mnt);
        const inner = path.join(mnt, 'disk.img');
        writeFileSync(inner, '');
        execFileSync('truncate', ['-s', String(16 * MiB), inner]);
        const dev = attach(inner);
        const r = await serve(`  - { name: bad, block: { path: ${dev} }, thin: false }`, '{ 0: bad }');
        if (r.t === undefined) throw new Error(r.output);
        t = r.t;
        ini = await connectAndLogin(t.port, IQN, { keys: [['MaxRecvDataSegmentLength', '262144']] });
        await ini.scsi(TEST_UNIT_READY, { lun: 0, edtl: 0 });
      });
      afterAll(() => ini?.close());

      it('reads fail with MEDIUM ERROR 03/11/00, writes with 03/0C/00, logged once for the burst; the target keeps serving', async () => {
        expect(
          (await ini.scsi(write10(0, 8), { lun: 0, edtl: 4096, write: true, data: randomBytes(4096) }))
            .status,
        ).toBe(Status.GOOD);
        // FS_IOC_SHUTDOWN (_IOR('X', 125, __u32)) with NOLOGFLUSH: the file system under the
        // loop device stops; everything after fails with EIO.
        execFileSync('python3', [
          '-c',
          `import fcntl,os,struct; fd=os.open(${JSON.stringify(mnt)},os.O_RDONLY); fcntl.ioctl(fd,0x8004587d,struct.pack('I',2))`,
        ]);
        for (let i = 0; i < 20; i++) {
          const r = await ini.scsi(read10(i * 8, 8), { lun: 0, edtl: 4096, read: true });
          expect(r.status).toBe(Status.CHECK_CONDITION);
          expect(sense(r)).toEqual([3, 0x11, 0x00]);
        }
        const w = await ini.scsi(write10(64, 8), {
          lun: 0,
          edtl: 4096,
          write: true,
          data: randomBytes(4096),
        });
        expect(sense(w)).toEqual([3, 0x0c, 0x00]);
        const inq = await ini.scsi(inquiry(96), { lun: 0, edtl: 96, read: true });
        expect(inq.status).toBe(Status.GOOD);
        const lines = t
          .output()
          .split('\n')
          .filter((l) => l.includes('backing store I/O error:'));
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain('"device":"bad"');
        expect(lines[0]).toContain('"code":"EIO"');
        expect(lines[0]).toContain('"sense":"03/11/00"');
      });
    });
  },
);

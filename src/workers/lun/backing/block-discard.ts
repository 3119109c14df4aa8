/**
 * Deallocating a range of a block device without an ioctl.
 *
 * Node has no BLKDISCARD ioctl and no fallocate(2), and spindle adds no native addon. But
 * Linux implements fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) on block devices
 * (block/fops.c blkdev_fallocate, since 4.9): it issues WRITE ZEROES allowing the device
 * to unmap (no BLKDEV_ZERO_NOUNMAP), and never falls back to writing zeros
 * (BLKDEV_ZERO_NOFALLBACK). So after it the range reads zeros, as LBPRZ = 1 promises,
 * and a thin device (dm-thin, a loop device over a sparse file, an SSD or SAN LUN with
 * unmap) gets the space back. util-linux's fallocate(1) makes that call; it ships with
 * every Linux system, so it is run as a child process per deallocation.
 *
 * Costs a process start (a few ms) per UNMAP or WRITE SAME with UNMAP, which are bulk
 * operations: Linux sends one UNMAP per discard request, at most MAXIMUM UNMAP LBA COUNT
 * blocks each. The device's page cache is invalidated by the kernel for the range.
 *
 * Offered only when the device reports WRITE ZEROES (queue/write_zeroes_max_bytes > 0)
 * and discard (queue/discard_max_bytes > 0): without the first the call fails
 * (EOPNOTSUPP), without the second the device could only write zeros, which would not
 * deallocate anything.
 */
import { execFile } from 'node:child_process';
import type { BlockDeviceInfo } from './block-device.ts';
import type { IoCallback } from './store.ts';

/** How long one deallocation may take before it is reported as failed. */
const DISCARD_TIMEOUT_MS = 120_000;

/** Whether the device can deallocate through punch-hole (see the file comment). */
export function canPunchHoles(info: BlockDeviceInfo): boolean {
  return info.writeZeroesMaxBytes > 0 && info.discardMaxBytes > 0;
}

/** Deallocate [position, +length) of the device at `devicePath`; cb(null) once it reads zeros. */
export function punchHole(devicePath: string, position: number, length: number, cb: IoCallback): void {
  if (length === 0) return cb(null);
  execFile(
    'fallocate',
    ['--punch-hole', '--keep-size', '--offset', String(position), '--length', String(length), devicePath],
    { timeout: DISCARD_TIMEOUT_MS },
    (err, _stdout, stderr) => {
      if (err === null) return cb(null);
      const e: NodeJS.ErrnoException = new Error(
        `fallocate --punch-hole on ${devicePath} failed: ${String(stderr).trim() || err.message}`,
      );
      e.code = 'EIO';
      cb(e);
    },
  );
}

/**
 * What a block device says about itself, from sysfs (no ioctl: Node has none).
 *
 * The device node's major:minor (stat rdev) names its sysfs directory through
 * /sys/dev/block/<major>:<minor> (Documentation/ABI/stable/sysfs-dev). From there:
 *   size                            capacity in 512-byte sectors, whatever the logical
 *                                   block size (sysfs-block "size"; partitions have it too)
 *   ro                              1 when the kernel has the device read-only
 *   queue/logical_block_size        the unit of addressing (what blockSize must equal)
 *   queue/physical_block_size       the unit the device writes atomically
 *   queue/rotational                1: spinning medium (reported in VPD B1h)
 *   queue/discard_max_bytes         0: no discard
 *   queue/discard_granularity       the unit discards work in
 *   queue/write_zeroes_max_bytes    0: no WRITE ZEROES (fallocate PUNCH_HOLE needs it)
 *   queue/dma_alignment             buffer address alignment mask for direct I/O
 * A partition has no queue/ directory of its own: its disk's (the parent directory) applies.
 */
import { existsSync } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

export interface BlockDeviceInfo {
  /** The path as configured (e.g. /dev/disk/by-id/...). */
  readonly path: string;
  /** Kernel name (sysfs directory name), e.g. `loop3`, `sda1`, `dm-2`. */
  readonly name: string;
  readonly sizeBytes: number;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  readonly rotational: boolean;
  readonly readOnly: boolean;
  /** Largest discard in bytes (0: none). */
  readonly discardMaxBytes: number;
  readonly discardGranularity: number;
  /** Largest WRITE ZEROES in bytes (0: none; fallocate punch-hole needs it, block-discard.ts). */
  readonly writeZeroesMaxBytes: number;
  /** Buffer address alignment direct I/O needs, in bytes (dma_alignment + 1). */
  readonly dmaAlignment: number;
}

/** Linux dev_t encoding (include/linux/kdev_t.h new_decode_dev). */
function majorMinor(rdev: bigint): [number, number] {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return [major, minor];
}

async function readNumber(file: string): Promise<number> {
  const text = (await readFile(file, 'utf8')).trim();
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${file}: unexpected content "${text}"`);
  return n;
}

/**
 * Read the attributes of the device whose sysfs directory is `sysDir` (the device itself,
 * e.g. /sys/devices/virtual/block/loop0). Exported for tests, which give it a fake tree.
 */
export async function readSysfsBlock(devicePath: string, sysDir: string): Promise<BlockDeviceInfo> {
  const queue = existsSync(path.join(sysDir, 'queue'))
    ? path.join(sysDir, 'queue')
    : path.join(path.dirname(sysDir), 'queue');
  const q = (name: string): Promise<number> => readNumber(path.join(queue, name));
  const optional = async (name: string, fallback: number): Promise<number> => {
    try {
      return await q(name);
    } catch {
      return fallback; // older kernels lack some attributes
    }
  };
  const sectors = await readNumber(path.join(sysDir, 'size'));
  const logicalBlockSize = await q('logical_block_size');
  return {
    path: devicePath,
    name: path.basename(sysDir),
    sizeBytes: sectors * 512,
    logicalBlockSize,
    physicalBlockSize: await optional('physical_block_size', logicalBlockSize),
    rotational: (await optional('rotational', 0)) === 1,
    readOnly: existsSync(path.join(sysDir, 'ro')) && (await readNumber(path.join(sysDir, 'ro'))) === 1,
    discardMaxBytes: await optional('discard_max_bytes', 0),
    discardGranularity: await optional('discard_granularity', 0),
    writeZeroesMaxBytes: await optional('write_zeroes_max_bytes', 0),
    dmaAlignment: (await optional('dma_alignment', 511)) + 1,
  };
}

/** Probe the block device at `devicePath` (any path to the node: symlinks are followed). */
export async function probeBlockDevice(devicePath: string): Promise<BlockDeviceInfo> {
  const st = await stat(devicePath, { bigint: true });
  if (!st.isBlockDevice()) {
    throw new Error(
      `${devicePath} is not a block device${st.isFile() ? ': configure a regular file as `file: { path, size }`' : ''}`,
    );
  }
  const [major, minor] = majorMinor(st.rdev);
  let sysDir: string;
  try {
    sysDir = await realpath(`/sys/dev/block/${major}:${minor}`);
  } catch {
    throw new Error(`${devicePath}: no sysfs entry for block device ${major}:${minor} (is /sys mounted?)`);
  }
  return readSysfsBlock(devicePath, sysDir);
}

/** Re-read the size (a runtime resize: the device itself may have grown, e.g. lvextend). */
export async function blockDeviceSize(info: BlockDeviceInfo): Promise<number> {
  return (await probeBlockDevice(info.path)).sizeBytes;
}

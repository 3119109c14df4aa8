/**
 * Test helpers: a ScsiCommand that records finish() calls, and LUs over real stores.
 */
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { IoContinuation, ScsiCommand } from '../../../src/shared/scsi/command.ts';
import { TaskAttribute } from '../../../src/shared/scsi/command.ts';
import type { DeviceConfig } from '../../../src/shared/config-types.ts';
import { executeCommand } from '../../../src/workers/lun/execute.ts';
import { LogicalUnit, type LuEnvironment } from '../../../src/workers/lun/logical-unit.ts';
import { alignedSharedBuffer } from '../../../src/shared/aligned-memory.ts';

export class TestCommand implements ScsiCommand {
  readonly cdb = Buffer.alloc(32);
  cdbLength = 16;
  data: Buffer;
  expectedLength: number;
  dataOutLength = 0;
  dataInLength = 0;
  dataOutWanted = -1; // poisoned: executeCommand must set it
  status = 0xff; // poisoned: executeCommand must set it
  readonly sense = Buffer.alloc(252);
  senseLength = 0;
  lun = 0;
  nexus = 1;
  attribute: number = TaskAttribute.SIMPLE;
  onIo: IoContinuation | null = null;
  inlineEpoch = 0;
  readonly ioTrampoline = (err: NodeJS.ErrnoException | null): void => {
    this.onIo!(this, err);
  };
  finishCount = 0;
  #resolve: (() => void) | null = null;
  readonly finished: Promise<void>;

  constructor(cdb: readonly number[], dataLength: number) {
    Buffer.from(cdb).copy(this.cdb);
    this.cdbLength = Math.max(16, cdb.length);
    this.data = Buffer.alloc(dataLength, 0xee); // canary fill
    this.expectedLength = dataLength;
    this.finished = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  finish(): void {
    this.finishCount++;
    this.#resolve?.();
  }

  /** Sense key, ASC, ASCQ of fixed-format sense. */
  get senseTriple(): [number, number, number] {
    return [this.sense[2]! & 0x0f, this.sense[12]!, this.sense[13]!];
  }

  /** Sense-key specific bytes 15-17 as {sksv, cd, bpv, bit, field}. */
  get fieldPointer(): { sksv: boolean; cd: boolean; bpv: boolean; bit: number; field: number } {
    const b = this.sense[15]!;
    return {
      sksv: (b & 0x80) !== 0,
      cd: (b & 0x40) !== 0,
      bpv: (b & 0x08) !== 0,
      bit: b & 0x07,
      field: this.sense.readUInt16BE(16),
    };
  }

  /** Data-in actually transferred (what the fabric would send). */
  get dataIn(): Buffer {
    return this.data.subarray(0, Math.min(this.dataInLength, this.data.length));
  }
}

/** Build a command; `dataOut` bytes are placed in data and counted as dataOutLength. */
export function makeCommand(
  cdb: readonly number[],
  opts: { dataLength?: number; dataOut?: Buffer; dataOutLength?: number } = {},
): TestCommand {
  const len = opts.dataLength ?? opts.dataOut?.length ?? 0;
  const cmd = new TestCommand(cdb, len);
  if (opts.dataOut !== undefined) {
    opts.dataOut.copy(cmd.data);
    cmd.dataOutLength = opts.dataOutLength ?? opts.dataOut.length;
  }
  return cmd;
}

/** Execute and wait for finish(); asserts finish() ran exactly once (also a tick later). */
export async function run(lu: LogicalUnit, cmd: TestCommand): Promise<TestCommand> {
  executeCommand(lu, cmd);
  await cmd.finished;
  await new Promise((r) => setImmediate(r));
  if (cmd.finishCount !== 1) throw new Error(`finish() called ${cmd.finishCount} times`);
  return cmd;
}

export const CLUSTER = { clusterId: 'test-cluster' };

/** Unit tests have no LUN worker logger: executor bugs are printed to the console. */
export const TEST_ENV: LuEnvironment = {
  reportInternalError: (err) => console.error('spindle (test): internal error while executing a SCSI command', err),
};

export function ramDevice(overrides: Partial<DeviceConfig> = {}, blocks = 1024): DeviceConfig {
  const blockSize = overrides.blockSize ?? 512;
  return {
    name: 'disk0',
    backing: { type: 'ram', size: blocks * blockSize },
    blockSize,
    readOnly: false,
    writeCache: 'writeback',
    vendor: 'SPINDLE',
    product: 'RAMDISK',
    ...overrides,
  };
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'spindle-lun-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Kinds of store every SBC test runs against. */
export type StoreKind = 'ram' | 'file';

export async function openLu(
  kind: StoreKind,
  dir: string,
  overrides: Partial<DeviceConfig> = {},
  blocks = 1024,
  env: LuEnvironment = TEST_ENV,
): Promise<LogicalUnit> {
  const base = ramDevice(overrides, blocks);
  const dev: DeviceConfig =
    kind === 'ram'
      ? base
      : {
          ...base,
          backing: {
            type: 'file',
            path: path.join(dir, `${base.name}-${Math.random()}.img`),
            size: blocks * base.blockSize,
          },
        };
  return LogicalUnit.open(dev, CLUSTER, env);
}

/** CDB builders. */
export function cdb10(op: number, lba: number, len: number, byte1 = 0): number[] {
  const b = Buffer.alloc(10);
  b[0] = op;
  b[1] = byte1;
  b.writeUInt32BE(lba >>> 0, 2);
  b.writeUInt16BE(len, 7);
  return [...b];
}

export function cdb12(op: number, lba: number, len: number, byte1 = 0): number[] {
  const b = Buffer.alloc(12);
  b[0] = op;
  b[1] = byte1;
  b.writeUInt32BE(lba >>> 0, 2);
  b.writeUInt32BE(len >>> 0, 6);
  return [...b];
}

export function cdb16(op: number, lba: bigint, len: number, byte1 = 0): number[] {
  const b = Buffer.alloc(16);
  b[0] = op;
  b[1] = byte1;
  b.writeBigUInt64BE(lba, 2);
  b.writeUInt32BE(len >>> 0, 10);
  return [...b];
}

export function cdb6(op: number, lba: number, len: number): number[] {
  return [op, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, len & 0xff, 0];
}

/**
 * Whether `dir`'s file system takes O_DIRECT I/O (ext4, xfs: yes; tmpfs: no, open fails
 * with EINVAL). Probed with a real aligned read, as the direct-I/O tests need it.
 */
export function supportsDirectIo(dir: string): boolean {
  const file = path.join(dir, `.odirect-probe-${process.pid}`);
  try {
    writeFileSync(file, Buffer.alloc(4096));
    const fd = openSync(file, constants.O_RDONLY | constants.O_DIRECT);
    try {
      readSync(fd, Buffer.from(alignedSharedBuffer(65536)), 0, 4096, 0);
      return true;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  } finally {
    rmSync(file, { force: true });
  }
}

/** A command whose data buffer is page-aligned memory (as a session worker's slab is). */
export function alignedCommand(
  cdb: readonly number[],
  opts: { dataLength?: number; dataOut?: Buffer; dataOutLength?: number } = {},
): TestCommand {
  const cmd = makeCommand(cdb, opts);
  const len = cmd.data.length;
  if (len > 0) {
    const aligned = Buffer.from(alignedSharedBuffer(len)).subarray(0, len);
    cmd.data.copy(aligned);
    cmd.data = aligned;
  }
  return cmd;
}

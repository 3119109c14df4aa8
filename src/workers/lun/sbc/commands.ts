/**
 * The SBC-4 (direct-access block device) commands, as command-table entries (see
 * ../execute.ts). `usage` is the CDB USAGE DATA of SPC-4 6.35.3.
 */
import { Opcode, SanitizeAction, ServiceActionIn16 } from '../../../shared/scsi/opcodes.ts';
import type { CommandDescriptor } from '../spc/handler.ts';
import { CTL, FF } from '../spc/handler.ts';
import { compareAndWrite, orWrite, writeAtomic } from './atomic.ts';
import { preFetch, readDefectData } from './prefetch.ts';
import { getLbaStatus, unmap } from './provisioning.ts';
import { read, write } from './read-write.ts';
import { readCapacity10, readCapacity16 } from './read-capacity.ts';
import { sanitize } from './sanitize.ts';
import { preventAllowMediumRemoval, startStopUnit } from './start-stop-unit.ts';
import { synchronizeCache } from './synchronize-cache.ts';
import { verify, writeAndVerify } from './verify.ts';
import { writeSame } from './write-same.ts';

/** Eight FF bytes: a 64-bit LBA field. */
const LBA64 = [FF, FF, FF, FF, FF, FF, FF, FF] as const;
/** Four FF bytes: a 32-bit LBA or length field. */
const U32 = [FF, FF, FF, FF] as const;

/** SANITIZE usage: IMMED(7) | AUSE(5) | SERVICE ACTION; PARAMETER LIST LENGTH. */
function sanitizeUsage(sa: number): number[] {
  return [0x48, 0xa0 | sa, 0, 0, 0, 0, 0, FF, FF, CTL];
}

export const SBC_COMMANDS: readonly CommandDescriptor[] = [
  { opcode: Opcode.READ_6, name: 'READ(6)', usage: [0x08, 0x1f, FF, FF, FF, CTL], handler: read },
  { opcode: Opcode.WRITE_6, name: 'WRITE(6)', usage: [0x0a, 0x1f, FF, FF, FF, CTL], handler: write },
  {
    opcode: Opcode.START_STOP_UNIT,
    name: 'START STOP UNIT',
    usage: [0x1b, 0x01, 0, 0x0f, 0xf7, CTL],
    handler: startStopUnit,
  },
  {
    opcode: Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL,
    name: 'PREVENT ALLOW MEDIUM REMOVAL',
    usage: [0x1e, 0, 0, 0, 0x03, CTL],
    handler: preventAllowMediumRemoval,
  },
  {
    opcode: Opcode.READ_CAPACITY_10,
    name: 'READ CAPACITY(10)',
    usage: [0x25, 0, FF, FF, FF, FF, 0, 0, 0x01, CTL],
    handler: readCapacity10,
  },
  { opcode: Opcode.READ_10, name: 'READ(10)', usage: [0x28, 0xf8, ...U32, 0, FF, FF, CTL], handler: read },
  { opcode: Opcode.WRITE_10, name: 'WRITE(10)', usage: [0x2a, 0xf8, ...U32, 0, FF, FF, CTL], handler: write },
  {
    opcode: Opcode.WRITE_AND_VERIFY_10,
    name: 'WRITE AND VERIFY(10)',
    usage: [0x2e, 0xf6, ...U32, 0, FF, FF, CTL],
    handler: writeAndVerify,
  },
  { opcode: Opcode.VERIFY_10, name: 'VERIFY(10)', usage: [0x2f, 0xf6, ...U32, 0, FF, FF, CTL], handler: verify },
  { opcode: Opcode.PRE_FETCH_10, name: 'PRE-FETCH(10)', usage: [0x34, 0x02, ...U32, 0, FF, FF, CTL], handler: preFetch },
  {
    opcode: Opcode.SYNCHRONIZE_CACHE_10,
    name: 'SYNCHRONIZE CACHE(10)',
    usage: [0x35, 0x02, ...U32, 0, FF, FF, CTL],
    handler: synchronizeCache,
  },
  {
    opcode: Opcode.READ_DEFECT_DATA_10,
    name: 'READ DEFECT DATA(10)',
    usage: [0x37, 0, 0x1f, 0, 0, 0, 0, FF, FF, CTL],
    handler: readDefectData,
  },
  {
    opcode: Opcode.WRITE_SAME_10,
    name: 'WRITE SAME(10)',
    usage: [0x41, 0xf8, ...U32, 0, FF, FF, CTL],
    handler: writeSame,
  },
  { opcode: Opcode.UNMAP, name: 'UNMAP', usage: [0x42, 0x01, 0, 0, 0, 0, 0, FF, FF, CTL], handler: unmap },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.OVERWRITE,
    name: 'SANITIZE / OVERWRITE',
    usage: sanitizeUsage(SanitizeAction.OVERWRITE),
    handler: sanitize,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.BLOCK_ERASE,
    name: 'SANITIZE / BLOCK ERASE',
    usage: sanitizeUsage(SanitizeAction.BLOCK_ERASE),
    handler: sanitize,
    // Block erase means deallocation: only a thin-provisioned LU has it (sanitize.ts).
    supported: (lu) => lu.sbc.thin,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.CRYPTOGRAPHIC_ERASE,
    name: 'SANITIZE / CRYPTOGRAPHIC ERASE',
    usage: sanitizeUsage(SanitizeAction.CRYPTOGRAPHIC_ERASE),
    handler: sanitize,
    // No ciphertext to re-key: "erase" deallocates, so it is offered where BLOCK ERASE is.
    supported: (lu) => lu.sbc.thin,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.EXIT_FAILURE_MODE,
    name: 'SANITIZE / EXIT FAILURE MODE',
    usage: sanitizeUsage(SanitizeAction.EXIT_FAILURE_MODE),
    handler: sanitize,
  },
  { opcode: Opcode.READ_16, name: 'READ(16)', usage: [0x88, 0xf8, ...LBA64, ...U32, 0, CTL], handler: read },
  {
    opcode: Opcode.COMPARE_AND_WRITE,
    name: 'COMPARE AND WRITE',
    usage: [0x89, 0xfa, ...LBA64, 0, 0, 0, FF, 0, CTL],
    handler: compareAndWrite,
  },
  { opcode: Opcode.WRITE_16, name: 'WRITE(16)', usage: [0x8a, 0xf8, ...LBA64, ...U32, 0, CTL], handler: write },
  { opcode: Opcode.ORWRITE_16, name: 'ORWRITE(16)', usage: [0x8b, 0xfa, ...LBA64, ...U32, 0, CTL], handler: orWrite },
  {
    opcode: Opcode.WRITE_AND_VERIFY_16,
    name: 'WRITE AND VERIFY(16)',
    usage: [0x8e, 0xf6, ...LBA64, ...U32, 0, CTL],
    handler: writeAndVerify,
  },
  { opcode: Opcode.VERIFY_16, name: 'VERIFY(16)', usage: [0x8f, 0xf6, ...LBA64, ...U32, 0, CTL], handler: verify },
  { opcode: Opcode.PRE_FETCH_16, name: 'PRE-FETCH(16)', usage: [0x90, 0x02, ...LBA64, ...U32, 0, CTL], handler: preFetch },
  {
    opcode: Opcode.SYNCHRONIZE_CACHE_16,
    name: 'SYNCHRONIZE CACHE(16)',
    usage: [0x91, 0x02, ...LBA64, ...U32, 0, CTL],
    handler: synchronizeCache,
  },
  {
    opcode: Opcode.WRITE_SAME_16,
    name: 'WRITE SAME(16)',
    usage: [0x93, 0xf9, ...LBA64, ...U32, 0, CTL],
    handler: writeSame,
  },
  {
    opcode: Opcode.WRITE_ATOMIC_16,
    name: 'WRITE ATOMIC(16)',
    usage: [0x9c, 0xf8, ...LBA64, FF, FF, FF, FF, 0, CTL],
    handler: writeAtomic,
  },
  {
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: ServiceActionIn16.READ_CAPACITY_16,
    name: 'READ CAPACITY(16)',
    usage: [0x9e, ServiceActionIn16.READ_CAPACITY_16, ...LBA64, ...U32, 0x01, CTL],
    handler: readCapacity16,
  },
  {
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: ServiceActionIn16.GET_LBA_STATUS,
    name: 'GET LBA STATUS',
    usage: [0x9e, ServiceActionIn16.GET_LBA_STATUS, ...LBA64, ...U32, 0, CTL],
    handler: getLbaStatus,
  },
  { opcode: Opcode.READ_12, name: 'READ(12)', usage: [0xa8, 0xf8, ...U32, ...U32, 0, CTL], handler: read },
  { opcode: Opcode.WRITE_12, name: 'WRITE(12)', usage: [0xaa, 0xf8, ...U32, ...U32, 0, CTL], handler: write },
  {
    opcode: Opcode.WRITE_AND_VERIFY_12,
    name: 'WRITE AND VERIFY(12)',
    usage: [0xae, 0xf6, ...U32, ...U32, 0, CTL],
    handler: writeAndVerify,
  },
  { opcode: Opcode.VERIFY_12, name: 'VERIFY(12)', usage: [0xaf, 0xf6, ...U32, ...U32, 0, CTL], handler: verify },
  {
    opcode: Opcode.READ_DEFECT_DATA_12,
    name: 'READ DEFECT DATA(12)',
    usage: [0xb7, 0x1f, ...U32, ...U32, 0, CTL],
    handler: readDefectData,
  },
];

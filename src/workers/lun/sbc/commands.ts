/**
 * The SBC-4 (direct-access block device) commands, as rows of the opcode registry (see
 * ../opcode-registry.ts). `usage` is the CDB USAGE DATA of SPC-4 6.35.3; `policy` is
 * explained in ../command-policy.ts. Persistent reservation classes follow SBC-4 4.17
 * table 13.
 */
import { Opcode, SanitizeAction, ServiceActionIn16 } from '../../../shared/scsi/opcodes.ts';
import type { CommandPolicy } from '../command-policy.ts';
import {
  ALUA_ACTIVE_ONLY,
  MEDIUM_ACCESS,
  NO_MEDIUM_ACCESS,
  PREVENT_CLEARED,
  PrAccess,
  START_WITHOUT_POWER_CONDITION,
  Spc2Access,
  UaHandling,
  byCdb,
} from '../command-policy.ts';
import type { OpcodeRow } from '../spc/handler.ts';
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

/**
 * A command that accesses the medium: refused in every not-ready state and every
 * non-active ALUA state, reports unit attentions, only the SPC-2 holder may send it.
 * `pr`: READ for the reading commands (READ, VERIFY, PRE-FETCH, READ DEFECT DATA, GET LBA
 * STATUS: SBC-4 table 13 allows them through Write Exclusive), WRITE for the others,
 * ALWAYS for READ CAPACITY.
 */
function medium(pr: PrAccess, exclusive = false): CommandPolicy {
  return {
    pr,
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_ACTIVE_ONLY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive,
  };
}

const READS = medium(PrAccess.READ);
const WRITES = medium(PrAccess.WRITE);
/** COMPARE AND WRITE, ORWRITE, WRITE ATOMIC: run alone on the LU (SBC-4 5.3, 4.29.2). */
const EXCLUSIVE_WRITES = medium(PrAccess.WRITE, true);

/**
 * SANITIZE, every service action: WRITE (SBC-4 table 13); after a failed sanitize it is
 * how the LU recovers (a new sanitize or EXIT FAILURE MODE, SBC-4 4.11.4), while one is
 * in progress NOT READY, SANITIZE IN PROGRESS (SBC-4 4.11.2).
 */
const SANITIZE: CommandPolicy = {
  ...WRITES,
  notReady: { noMedium: false, sanitizing: false, sanitizeFailed: true },
};

export const SBC_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: Opcode.READ_6,
    name: 'READ(6)',
    usage: [0x08, 0x1f, FF, FF, FF, CTL],
    handler: read,
    policy: READS,
  },
  {
    opcode: Opcode.WRITE_6,
    name: 'WRITE(6)',
    usage: [0x0a, 0x1f, FF, FF, FF, CTL],
    handler: write,
    policy: WRITES,
  },
  {
    opcode: Opcode.START_STOP_UNIT,
    name: 'START STOP UNIT',
    usage: [0x1b, 0x01, 0, 0x0f, 0xf7, CTL],
    handler: startStopUnit,
    policy: {
      // SBC-4 table 13: START = 1 with POWER CONDITION 0h allowed, otherwise conflict.
      pr: byCdb(START_WITHOUT_POWER_CONDITION, PrAccess.ALWAYS, PrAccess.WRITE),
      spc2: Spc2Access.HOLDER_ONLY,
      alua: ALUA_ACTIVE_ONLY,
      unitAttention: UaHandling.REPORT,
      notReady: NO_MEDIUM_ACCESS, // loads and ejects the medium
      exclusive: false,
    },
  },
  {
    opcode: Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL,
    name: 'PREVENT ALLOW MEDIUM REMOVAL',
    usage: [0x1e, 0, 0, 0, 0x03, CTL],
    handler: preventAllowMediumRemoval,
    policy: {
      // SBC-4 table 13: PREVENT = 00b allowed, otherwise conflict; SPC-2 5.5.1 likewise.
      pr: byCdb(PREVENT_CLEARED, PrAccess.ALWAYS, PrAccess.WRITE),
      spc2: byCdb(PREVENT_CLEARED, Spc2Access.ALLOWED, Spc2Access.HOLDER_ONLY),
      alua: ALUA_ACTIVE_ONLY,
      unitAttention: UaHandling.REPORT,
      notReady: NO_MEDIUM_ACCESS, // locks the medium in, needs none
      exclusive: false,
    },
  },
  {
    opcode: Opcode.READ_CAPACITY_10,
    name: 'READ CAPACITY(10)',
    usage: [0x25, 0, FF, FF, FF, FF, 0, 0, 0x01, CTL],
    handler: readCapacity10,
    policy: medium(PrAccess.ALWAYS),
  },
  {
    opcode: Opcode.READ_10,
    name: 'READ(10)',
    usage: [0x28, 0xf8, ...U32, 0, FF, FF, CTL],
    handler: read,
    policy: READS,
  },
  {
    opcode: Opcode.WRITE_10,
    name: 'WRITE(10)',
    usage: [0x2a, 0xf8, ...U32, 0, FF, FF, CTL],
    handler: write,
    policy: WRITES,
  },
  {
    opcode: Opcode.WRITE_AND_VERIFY_10,
    name: 'WRITE AND VERIFY(10)',
    usage: [0x2e, 0xf6, ...U32, 0, FF, FF, CTL],
    handler: writeAndVerify,
    policy: WRITES,
  },
  {
    opcode: Opcode.VERIFY_10,
    name: 'VERIFY(10)',
    usage: [0x2f, 0xf6, ...U32, 0, FF, FF, CTL],
    handler: verify,
    policy: READS,
  },
  {
    opcode: Opcode.PRE_FETCH_10,
    name: 'PRE-FETCH(10)',
    usage: [0x34, 0x02, ...U32, 0, FF, FF, CTL],
    handler: preFetch,
    policy: READS,
  },
  {
    opcode: Opcode.SYNCHRONIZE_CACHE_10,
    name: 'SYNCHRONIZE CACHE(10)',
    usage: [0x35, 0x02, ...U32, 0, FF, FF, CTL],
    handler: synchronizeCache,
    policy: WRITES,
  },
  {
    opcode: Opcode.READ_DEFECT_DATA_10,
    name: 'READ DEFECT DATA(10)',
    usage: [0x37, 0, 0x1f, 0, 0, 0, 0, FF, FF, CTL],
    handler: readDefectData,
    policy: READS,
  },
  // READ LONG(10) (SBC-4 5.16), not implemented: read (SBC-4 table 13).
  { opcode: Opcode.READ_LONG_10, name: 'READ LONG(10)', handler: null, policy: READS },
  {
    opcode: Opcode.WRITE_SAME_10,
    name: 'WRITE SAME(10)',
    usage: [0x41, 0xf8, ...U32, 0, FF, FF, CTL],
    handler: writeSame,
    policy: WRITES,
  },
  {
    opcode: Opcode.UNMAP,
    name: 'UNMAP',
    usage: [0x42, 0x01, 0, 0, 0, 0, 0, FF, FF, CTL],
    handler: unmap,
    policy: WRITES,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.OVERWRITE,
    name: 'SANITIZE / OVERWRITE',
    usage: sanitizeUsage(SanitizeAction.OVERWRITE),
    handler: sanitize,
    policy: SANITIZE,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.BLOCK_ERASE,
    name: 'SANITIZE / BLOCK ERASE',
    usage: sanitizeUsage(SanitizeAction.BLOCK_ERASE),
    handler: sanitize,
    policy: SANITIZE,
    // Block erase means deallocation: only a thin-provisioned LU with an allocation map
    // has it (sanitize.ts; a thin block device has no map, sbc/state.ts).
    supported: (lu) => lu.sbc.map !== null,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.CRYPTOGRAPHIC_ERASE,
    name: 'SANITIZE / CRYPTOGRAPHIC ERASE',
    usage: sanitizeUsage(SanitizeAction.CRYPTOGRAPHIC_ERASE),
    handler: sanitize,
    policy: SANITIZE,
    // No ciphertext to re-key: "erase" deallocates, so it is offered where BLOCK ERASE is.
    supported: (lu) => lu.sbc.map !== null,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: SanitizeAction.EXIT_FAILURE_MODE,
    name: 'SANITIZE / EXIT FAILURE MODE',
    usage: sanitizeUsage(SanitizeAction.EXIT_FAILURE_MODE),
    handler: sanitize,
    policy: SANITIZE,
  },
  {
    opcode: Opcode.SANITIZE,
    serviceAction: 'other',
    name: 'SANITIZE / other service actions',
    handler: null,
    policy: SANITIZE,
  },
  {
    opcode: Opcode.READ_16,
    name: 'READ(16)',
    usage: [0x88, 0xf8, ...LBA64, ...U32, 0, CTL],
    handler: read,
    policy: READS,
  },
  {
    opcode: Opcode.COMPARE_AND_WRITE,
    name: 'COMPARE AND WRITE',
    usage: [0x89, 0xfa, ...LBA64, 0, 0, 0, FF, 0, CTL],
    handler: compareAndWrite,
    policy: EXCLUSIVE_WRITES,
  },
  {
    opcode: Opcode.WRITE_16,
    name: 'WRITE(16)',
    usage: [0x8a, 0xf8, ...LBA64, ...U32, 0, CTL],
    handler: write,
    policy: WRITES,
  },
  {
    opcode: Opcode.ORWRITE_16,
    name: 'ORWRITE(16)',
    usage: [0x8b, 0xfa, ...LBA64, ...U32, 0, CTL],
    handler: orWrite,
    policy: EXCLUSIVE_WRITES,
  },
  {
    opcode: Opcode.WRITE_AND_VERIFY_16,
    name: 'WRITE AND VERIFY(16)',
    usage: [0x8e, 0xf6, ...LBA64, ...U32, 0, CTL],
    handler: writeAndVerify,
    policy: WRITES,
  },
  {
    opcode: Opcode.VERIFY_16,
    name: 'VERIFY(16)',
    usage: [0x8f, 0xf6, ...LBA64, ...U32, 0, CTL],
    handler: verify,
    policy: READS,
  },
  {
    opcode: Opcode.PRE_FETCH_16,
    name: 'PRE-FETCH(16)',
    usage: [0x90, 0x02, ...LBA64, ...U32, 0, CTL],
    handler: preFetch,
    policy: READS,
  },
  {
    opcode: Opcode.SYNCHRONIZE_CACHE_16,
    name: 'SYNCHRONIZE CACHE(16)',
    usage: [0x91, 0x02, ...LBA64, ...U32, 0, CTL],
    handler: synchronizeCache,
    policy: WRITES,
  },
  {
    opcode: Opcode.WRITE_SAME_16,
    name: 'WRITE SAME(16)',
    usage: [0x93, 0xf9, ...LBA64, ...U32, 0, CTL],
    handler: writeSame,
    policy: WRITES,
  },
  {
    opcode: Opcode.WRITE_ATOMIC_16,
    name: 'WRITE ATOMIC(16)',
    usage: [0x9c, 0xf8, ...LBA64, FF, FF, FF, FF, 0, CTL],
    handler: writeAtomic,
    policy: EXCLUSIVE_WRITES,
  },
  {
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: ServiceActionIn16.READ_CAPACITY_16,
    name: 'READ CAPACITY(16)',
    usage: [0x9e, ServiceActionIn16.READ_CAPACITY_16, ...LBA64, ...U32, 0x01, CTL],
    handler: readCapacity16,
    policy: medium(PrAccess.ALWAYS),
  },
  {
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: ServiceActionIn16.GET_LBA_STATUS,
    name: 'GET LBA STATUS',
    usage: [0x9e, ServiceActionIn16.GET_LBA_STATUS, ...LBA64, ...U32, 0, CTL],
    handler: getLbaStatus,
    policy: READS,
  },
  // REPORT REFERRALS, READ LONG(16) (not implemented): read (SBC-4 table 13).
  {
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: 'other',
    name: 'SERVICE ACTION IN(16) / other service actions',
    handler: null,
    policy: READS,
  },
  {
    opcode: Opcode.READ_12,
    name: 'READ(12)',
    usage: [0xa8, 0xf8, ...U32, ...U32, 0, CTL],
    handler: read,
    policy: READS,
  },
  {
    opcode: Opcode.WRITE_12,
    name: 'WRITE(12)',
    usage: [0xaa, 0xf8, ...U32, ...U32, 0, CTL],
    handler: write,
    policy: WRITES,
  },
  {
    opcode: Opcode.WRITE_AND_VERIFY_12,
    name: 'WRITE AND VERIFY(12)',
    usage: [0xae, 0xf6, ...U32, ...U32, 0, CTL],
    handler: writeAndVerify,
    policy: WRITES,
  },
  {
    opcode: Opcode.VERIFY_12,
    name: 'VERIFY(12)',
    usage: [0xaf, 0xf6, ...U32, ...U32, 0, CTL],
    handler: verify,
    policy: READS,
  },
  {
    opcode: Opcode.READ_DEFECT_DATA_12,
    name: 'READ DEFECT DATA(12)',
    usage: [0xb7, 0x1f, ...U32, ...U32, 0, CTL],
    handler: readDefectData,
    policy: READS,
  },
];

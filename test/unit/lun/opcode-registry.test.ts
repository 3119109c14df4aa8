/**
 * The opcode registry (src/workers/lun/opcode-registry.ts): every row decides every
 * policy flag, the lookup tables the pipeline uses are exactly what the rows say, and
 * each pipeline stage applies its flag as the row says, for every row, on real logical
 * units. The registry is the only per-command table; these tests walk it rather than a
 * hand-made list, so a row added later is covered without touching them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { cdbLengthOf } from '../../../src/shared/scsi/cdb.ts';
import { Opcode } from '../../../src/shared/scsi/opcodes.ts';
import { SenseReason } from '../../../src/shared/scsi/sense.ts';
import type { ByCdb, CommandPolicy, Decision } from '../../../src/workers/lun/command-policy.ts';
import {
  AluaBit,
  NotReadyBit,
  PrAccess,
  Spc2Access,
  UNKNOWN_OPCODE_POLICY,
  UaHandling,
  aluaBits,
  notReadyBits,
} from '../../../src/workers/lun/command-policy.ts';
import { OpcodeMap } from '../../../src/workers/lun/opcode-map.ts';
import {
  ALUA_ADMITTED,
  CDROM_COMMANDS,
  COMMANDS,
  DISK_COMMANDS,
  NOT_READY_SERVED,
  PR_ACCESS,
  REGISTRY,
  SPC2_ACCESS,
  UA_HANDLING,
  lookupCommand,
  type CommandSet,
} from '../../../src/workers/lun/opcode-registry.ts';
import type { OpcodeRow } from '../../../src/workers/lun/spc/handler.ts';
import { executeCommand } from '../../../src/workers/lun/execute.ts';
import { checkAndReport, establishForNexus } from '../../../src/workers/lun/ua/unit-attention.ts';
import { checkAluaAccess } from '../../../src/workers/lun/alua/access.ts';
import { AluaState, PortGroupTable } from '../../../src/workers/lun/alua/port-groups.ts';
import { checkReservationConflict } from '../../../src/workers/lun/pr/conflict.ts';
import { SanitizeState } from '../../../src/workers/lun/sbc/state.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import type { NexusInfo } from '../../../src/workers/lun/nexus.ts';
import { type TestCommand, makeCommand, openLu, run, tempDir } from './helpers.ts';
import { NEXUSES, cmdAs, openPrLu, prout } from './pr/helpers.ts';

const POLICY_KEYS = ['alua', 'exclusive', 'notReady', 'pr', 'spc2', 'unitAttention'];
const ADMISSION_KEYS = {
  alua: ['standby', 'transitioning', 'unavailable'],
  notReady: ['noMedium', 'sanitizeFailed', 'sanitizing'],
};
const PR_VALUES: readonly number[] = Object.values(PrAccess);
const SPC2_VALUES: readonly number[] = Object.values(Spc2Access);
const UA_VALUES: readonly number[] = Object.values(UaHandling);

function isByCdb(d: Decision<number>): d is ByCdb<number> {
  return typeof d === 'object';
}

/** The CDB-dependent decisions of a policy. */
function cdbTestsOf(p: CommandPolicy): ByCdb<number>[] {
  return [p.pr as Decision<number>, p.spc2 as Decision<number>].filter(isByCdb);
}

/** Every value a decision can take. */
function valuesOf(d: Decision<number>): number[] {
  return isByCdb(d) ? [d.then, d.otherwise] : [d];
}

/** The service actions a row stands for: its own, or every one no other row of its opcode names. */
function serviceActionsOf(row: OpcodeRow): number[] {
  if (row.serviceAction === undefined) return [...Array(32).keys()];
  if (row.serviceAction !== 'other') return [row.serviceAction];
  const named = new Set(REGISTRY.filter((r) => r.opcode === row.opcode).map((r) => r.serviceAction));
  return [...Array(32).keys()].filter((sa) => !named.has(sa));
}

/**
 * CDBs of the commands a row stands for: one per service action (with reserved bits of
 * byte 1 set too, which must not matter), and for CDB-dependent decisions one CDB on
 * either side of each test. Returned with the decision values they should get.
 */
function samplesOf(row: OpcodeRow): Buffer[] {
  const tests = cdbTestsOf(row.policy).map((d) => d.when);
  const out: Buffer[] = [];
  for (const sa of serviceActionsOf(row)) {
    for (const high of [0x00, 0xe0]) {
      const base = Buffer.alloc(16);
      base[0] = row.opcode;
      base[1] = high | sa;
      out.push(base);
      for (const t of tests) {
        const pass = Buffer.from(base);
        pass[t.byte] = (pass[t.byte]! & ~t.mask) | t.value;
        const fail = Buffer.from(base);
        fail[t.byte] = (fail[t.byte]! & ~t.mask) | (~t.value & t.mask);
        out.push(pass, fail);
      }
    }
  }
  return out;
}

function decide(d: Decision<number>, cdb: Buffer): number {
  if (!isByCdb(d)) return d;
  return (cdb[d.when.byte]! & d.when.mask) === d.when.value ? d.then : d.otherwise;
}

/** The row a CDB belongs to (undefined: no row, the unknown-opcode policy applies). */
function rowOf(cdb: Buffer, registry: readonly OpcodeRow[] = REGISTRY): OpcodeRow | undefined {
  const rows = registry.filter((r) => r.opcode === cdb[0]);
  const sa = cdb[1]! & 0x1f;
  return (
    rows.find((r) => r.serviceAction === undefined || r.serviceAction === sa) ??
    rows.find((r) => r.serviceAction === 'other')
  );
}

/** Every device type's command set (device-type.ts): the disk's (SPC + SBC) and the CD-ROM's (SPC + MMC). */
const SETS: readonly [string, CommandSet][] = [
  ['disk', DISK_COMMANDS],
  ['CD-ROM', CDROM_COMMANDS],
];

for (const [setName, set] of SETS) {
  const REGISTRY = set.rows;
  const COMMANDS = set.commands;
  const lookupCommand = (cdb: Buffer) => set.lookup(cdb);
  const rowOfSet = (cdb: Buffer) => rowOf(cdb, set.rows);
  describe(`opcode registry (${setName} set): rows`, () => {
    it('every row decides every policy flag, with a valid value', () => {
      expect(REGISTRY.length).toBeGreaterThan(setName === 'disk' ? 70 : 50);
      for (const row of [...REGISTRY, { name: 'unknown opcode', policy: UNKNOWN_OPCODE_POLICY }]) {
        const p: CommandPolicy = row.policy;
        const where = `${row.name}: `;
        expect(Object.keys(p).sort(), where).toEqual(POLICY_KEYS);
        for (const v of valuesOf(p.pr)) expect(PR_VALUES, `${where}pr`).toContain(v);
        for (const v of valuesOf(p.spc2)) expect(SPC2_VALUES, `${where}spc2`).toContain(v);
        for (const d of [p.pr, p.spc2]) {
          if (!isByCdb(d)) continue;
          expect(Object.keys(d).sort(), where).toEqual(['otherwise', 'then', 'when']);
          expect(d.then, `${where}a CDB test that changes nothing`).not.toBe(d.otherwise);
          if ('opcode' in row) expect(d.when.byte, where).toBeLessThan(cdbLengthOf(row.opcode) - 1); // not CONTROL
          expect(d.when.value & ~d.when.mask, where).toBe(0);
        }
        expect(UA_VALUES, `${where}unitAttention`).toContain(p.unitAttention);
        for (const k of ['alua', 'notReady'] as const) {
          expect(Object.keys(p[k]).sort(), `${where}${k}`).toEqual(ADMISSION_KEYS[k]);
          for (const v of Object.values(p[k])) expect(typeof v, `${where}${k}`).toBe('boolean');
        }
        expect(typeof p.exclusive, `${where}exclusive`).toBe('boolean');
      }
    });

    it('is well formed: one row per opcode or service action, an "other" row where service actions are listed', () => {
      const seen = new Set<string>();
      for (const row of REGISTRY) {
        expect(row.opcode).toBeGreaterThanOrEqual(0);
        expect(row.opcode).toBeLessThanOrEqual(0xff);
        expect(row.name.length).toBeGreaterThan(0);
        const id = `${row.opcode}/${row.serviceAction ?? '-'}`;
        expect(seen.has(id), `${row.name} listed twice`).toBe(false);
        seen.add(id);
      }
      for (let op = 0; op < 256; op++) {
        const rows = REGISTRY.filter((r) => r.opcode === op);
        if (rows.length === 0) continue;
        const plain = rows.filter((r) => r.serviceAction === undefined);
        if (plain.length > 0) {
          expect(rows, `opcode ${op}: with and without service action`).toHaveLength(1);
        } else {
          expect(
            rows.filter((r) => r.serviceAction === 'other'),
            `opcode ${op}`,
          ).toHaveLength(1);
          // Service actions live in CDB byte 1 bits 4..0 for every such opcode; not 7Fh.
          expect(op).not.toBe(Opcode.VARIABLE_LENGTH);
        }
      }
    });

    it('executed rows: CDB usage data matches the opcode, service action and group length', () => {
      expect(COMMANDS.length).toBe(REGISTRY.filter((r) => r.handler !== null).length);
      for (const c of COMMANDS) {
        expect(c.usage[0], c.name).toBe(c.opcode);
        expect(c.usage.length, c.name).toBe(cdbLengthOf(c.opcode));
        if (c.serviceAction !== undefined) expect(c.usage[1]! & 0x1f, c.name).toBe(c.serviceAction);
        // The control byte's LINK bit is evaluated (and rejected) for every command.
        expect(c.usage[c.usage.length - 1]! & 0x01, c.name).toBe(0x01);
      }
    });

    it('REGISTRY is sorted by opcode then service action (the REPORT SUPPORTED OPERATION CODES order)', () => {
      const key = (r: OpcodeRow): number =>
        r.opcode * 0x200 +
        (r.serviceAction === undefined ? 0 : r.serviceAction === 'other' ? 0x1ff : r.serviceAction + 1);
      const keys = REGISTRY.map(key);
      expect(keys).toEqual([...keys].sort((a, b) => a - b));
    });
  });

  describe(`opcode registry (${setName} set): the compiled tables agree with the rows`, () => {
    const maps: [string, OpcodeMap, (p: CommandPolicy) => Decision<number>][] = [
      ['unitAttention', set.uaHandling, (p) => p.unitAttention],
      ['alua', set.aluaAdmitted, (p) => aluaBits(p.alua)],
      ['pr', set.prAccess, (p) => p.pr],
      ['spc2', set.spc2Access, (p) => p.spc2],
      ['notReady', set.notReadyServed, (p) => notReadyBits(p.notReady)],
    ];

    for (const [flag, map, select] of maps) {
      it(`${flag}: every row, every service action, both sides of every CDB test`, () => {
        let checked = 0;
        for (const row of REGISTRY) {
          for (const cdb of samplesOf(row)) {
            expect(map.get(cdb), `${row.name} ${cdb.toString('hex', 0, 5)}`).toBe(
              decide(select(row.policy), cdb),
            );
            checked++;
          }
        }
        expect(checked).toBeGreaterThan(setName === 'disk' ? 1000 : 500);
      });

      it(`${flag}: opcodes without a row get the unknown-opcode policy`, () => {
        const cdb = Buffer.alloc(16);
        for (let op = 0; op < 256; op++) {
          if (REGISTRY.some((r) => r.opcode === op)) continue;
          for (let b1 = 0; b1 < 256; b1 += 7) {
            cdb[0] = op;
            cdb[1] = b1;
            expect(map.get(cdb), `opcode ${op}`).toBe(select(UNKNOWN_OPCODE_POLICY));
          }
        }
      });
    }

    it('dispatch finds exactly the executed rows', () => {
      const cdb = Buffer.alloc(16);
      for (let op = 0; op < 256; op++) {
        for (let b1 = 0; b1 < 256; b1++) {
          cdb[0] = op;
          cdb[1] = b1;
          const row = rowOfSet(cdb);
          const expected = row !== undefined && row.handler !== null ? row : undefined;
          expect(lookupCommand(cdb), `${op}/${b1}`).toBe(expected);
        }
      }
    });
  });
}

describe('opcode registry: the disk set is what the pipeline used before device types', () => {
  it("REGISTRY, COMMANDS and the policy tables are the disk set's", () => {
    expect(REGISTRY).toBe(DISK_COMMANDS.rows);
    expect(COMMANDS).toBe(DISK_COMMANDS.commands);
    expect([UA_HANDLING, ALUA_ADMITTED, PR_ACCESS, SPC2_ACCESS, NOT_READY_SERVED]).toEqual([
      DISK_COMMANDS.uaHandling,
      DISK_COMMANDS.aluaAdmitted,
      DISK_COMMANDS.prAccess,
      DISK_COMMANDS.spc2Access,
      DISK_COMMANDS.notReadyServed,
    ]);
    expect(lookupCommand(Buffer.from([0x28]))).toBe(DISK_COMMANDS.lookup(Buffer.from([0x28])));
  });

  it('OpcodeMap.compile refuses a malformed registry', () => {
    const e = (opcode: number, serviceAction: number | 'other' | undefined, value: Decision<number> = 0) => ({
      opcode,
      serviceAction,
      value,
      name: `${opcode}/${serviceAction}`,
    });
    expect(() => OpcodeMap.compile([e(1, undefined), e(1, undefined)], 0)).toThrow(/overlap/);
    expect(() => OpcodeMap.compile([e(1, undefined), e(1, 3)], 0)).toThrow(/overlap/);
    expect(() => OpcodeMap.compile([e(1, 3)], 0)).toThrow(/other service actions/);
    expect(() => OpcodeMap.compile([e(1, 3), e(1, 3), e(1, 'other')], 0)).toThrow(/twice/);
    expect(() => OpcodeMap.compile([e(1, 32), e(1, 'other')], 0)).toThrow(/service action/);
    expect(() => OpcodeMap.compile([e(1, undefined, 0x80)], 0)).toThrow(/range/);
    expect(() => OpcodeMap.compile([e(256, undefined)], 0)).toThrow(/opcode/);
    // Well formed: service actions that agree with 'other' need no per-action table.
    const m = OpcodeMap.compile([e(9, 1, 1), e(9, 'other', 1), e(8, 1, 2), e(8, 'other', 1)], 3);
    expect(m.byOpcode[9]).toBe(1);
    expect(m.get(Buffer.from([8, 1]))).toBe(2);
    expect(m.get(Buffer.from([8, 2]))).toBe(1);
    expect(m.get(Buffer.from([7, 2]))).toBe(3);
  });
});

describe('opcode registry: what the standards require of the policy', () => {
  it('only INQUIRY, REQUEST SENSE and REPORT LUNS are exempt from unit attentions (SAM-5 5.14)', () => {
    const exempt = REGISTRY.filter((r) => r.policy.unitAttention !== UaHandling.REPORT).map((r) => r.opcode);
    expect(exempt.sort((a, b) => a - b)).toEqual([Opcode.REQUEST_SENSE, Opcode.INQUIRY, Opcode.REPORT_LUNS]);
    expect(REGISTRY.find((r) => r.opcode === Opcode.REPORT_LUNS)!.policy.unitAttention).toBe(
      UaHandling.EXEMPT_CLEARS_LUNS_CHANGED,
    );
  });

  it('ALUA: transitioning admits a subset of unavailable, which admits a subset of standby (SPC-4 5.16.2.4-5)', () => {
    for (const r of REGISTRY) {
      const a = r.policy.alua;
      if (a.transitioning) expect(a.unavailable, r.name).toBe(true);
      if (a.unavailable) expect(a.standby, r.name).toBe(true);
    }
    const anyState = REGISTRY.filter((r) => r.policy.alua.transitioning).map((r) => r.name);
    expect(anyState.sort()).toEqual(['INQUIRY', 'REPORT LUNS', 'REPORT TARGET PORT GROUPS', 'REQUEST SENSE']);
  });

  it('not ready: what a sanitize allows needs no medium; what needs no medium survives a failed sanitize', () => {
    for (const r of REGISTRY) {
      const n = r.policy.notReady;
      if (n.sanitizing) expect(n.noMedium, r.name).toBe(true);
      if (n.noMedium) expect(n.sanitizeFailed, r.name).toBe(true);
    }
  });

  it('rows with the same executor have the same policy (one command, several CDB sizes or service actions)', () => {
    const byHandler = new Map<unknown, OpcodeRow[]>();
    for (const c of COMMANDS) byHandler.set(c.handler, [...(byHandler.get(c.handler) ?? []), c]);
    for (const rows of byHandler.values()) {
      for (const r of rows) expect(r.policy, `${r.name} vs ${rows[0]!.name}`).toEqual(rows[0]!.policy);
    }
    // And an opcode's 'other' row shares the policy of its executed service actions,
    // except where SPC-4 table 62 names service actions one by one (MAINTENANCE IN,
    // SERVICE ACTION IN(16)), and MAINTENANCE OUT, whose SET TARGET PORT GROUPS alone
    // SPC-4 5.16.2.4.4-5 admits in standby and unavailable.
    for (const other of REGISTRY.filter((r) => r.serviceAction === 'other')) {
      if (other.opcode === Opcode.MAINTENANCE_IN || other.opcode === Opcode.SERVICE_ACTION_IN_16 || other.opcode === Opcode.MAINTENANCE_OUT) continue;
      for (const c of COMMANDS.filter((x) => x.opcode === other.opcode))
        expect(c.policy, c.name).toEqual(other.policy);
    }
  });

  it('exclusive commands are the executed writes that must run alone (SBC-4 5.3, 4.29.2)', () => {
    const exclusive = REGISTRY.filter((r) => r.policy.exclusive);
    expect(exclusive.map((r) => r.opcode).sort((a, b) => a - b)).toEqual([
      Opcode.COMPARE_AND_WRITE,
      Opcode.ORWRITE_16,
      Opcode.WRITE_ATOMIC_16,
    ]);
    for (const r of exclusive) expect(r.policy.pr, r.name).toBe(PrAccess.WRITE);
  });
});

/** A command `row` stands for (its first service action), from nexus `nexus`. */
function commandFor(row: OpcodeRow, nexus = 1, byte4?: number): TestCommand {
  const cdb = Buffer.alloc(16);
  cdb[0] = row.opcode;
  cdb[1] = serviceActionsOf(row)[0]!;
  if (byte4 !== undefined) cdb[4] = byte4;
  const cmd = makeCommand([...cdb]);
  cmd.nexus = nexus;
  return cmd;
}

/** byte-4 values to try: both sides of a PREVENT / START test, else just 0. */
function byte4Variants(row: OpcodeRow): number[] {
  const d = cdbTestsOf(row.policy)[0];
  return d === undefined ? [0] : [d.when.value, ~d.when.value & d.when.mask];
}

describe('opcode registry: each stage applies its flag, for every row', () => {
  let dir: { dir: string; cleanup: () => void };
  let lu: LogicalUnit;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await lu?.close();
    dir.cleanup();
  });

  it('unit attention: reported unless the row is exempt; REPORT LUNS clears only 3F/0E', async () => {
    lu = await openLu('ram', dir.dir);
    for (const row of REGISTRY) {
      const u = lu.ua.byHandle.get(1);
      if (u !== undefined) u.queue.length = 0;
      establishForNexus(lu, 1, SenseReason.MODE_PARAMETERS_CHANGED);
      establishForNexus(lu, 1, SenseReason.REPORTED_LUNS_DATA_HAS_CHANGED);
      const cmd = commandFor(row);
      const reported = checkAndReport(lu, cmd, UA_HANDLING);
      expect(reported, row.name).toBe(row.policy.unitAttention === UaHandling.REPORT);
      const left = lu.ua.byHandle.get(1)!.queue.map((d) => d.asc);
      if (row.policy.unitAttention === UaHandling.REPORT) expect(left, row.name).toEqual([0x3f]);
      else if (row.policy.unitAttention === UaHandling.EXEMPT) expect(left, row.name).toEqual([0x2a, 0x3f]);
      else expect(left, row.name).toEqual([0x2a]);
    }
  });

  it("ALUA: refused with the state's NOT READY unless the row admits the state", async () => {
    lu = await openLu('ram', dir.dir);
    const info: NexusInfo = { ...NEXUSES[1]!, targetPortGroup: 1, relativeTargetPortId: 1 };
    lu.nexuses = { get: (id) => (id === 1 ? info : undefined) };
    const table = new PortGroupTable({
      implicitTransitionSec: 0,
      groups: [{ id: 1, relativeTargetPortIds: [1] }],
    });
    table.attach(lu);
    const states = [
      [AluaState.STANDBY, AluaBit.STANDBY, 0x0b],
      [AluaState.UNAVAILABLE, AluaBit.UNAVAILABLE, 0x0c],
      [AluaState.TRANSITIONING, AluaBit.TRANSITIONING, 0x0a],
    ] as const;
    for (const [state, bit, ascq] of states) {
      table.setPortGroupState(1, state);
      for (const row of REGISTRY) {
        const cmd = commandFor(row);
        const refused = checkAluaAccess(lu, cmd, ALUA_ADMITTED);
        expect(refused, `${row.name} in state ${state}`).toBe((aluaBits(row.policy.alua) & bit) === 0);
        if (refused) expect(cmd.senseTriple).toEqual([2, 0x04, ascq]);
      }
    }
    table.setPortGroupState(1, AluaState.ACTIVE_NON_OPTIMIZED);
    for (const row of REGISTRY)
      expect(checkAluaAccess(lu, commandFor(row), ALUA_ADMITTED), row.name).toBe(false);
  });

  it('not ready: each state refuses exactly the rows that do not admit it', async () => {
    lu = await openLu('ram', dir.dir, { removable: true });
    const states: [string, () => void, number, [number, number, number]][] = [
      ['no medium', () => lu.sbc.setMediumPresent(false), NotReadyBit.NO_MEDIUM, [2, 0x3a, 0]],
      [
        'sanitizing',
        () => lu.sbc.setSanitize(SanitizeState.IN_PROGRESS),
        NotReadyBit.SANITIZING,
        [2, 0x04, 0x1b],
      ],
      [
        'sanitize failed',
        () => lu.sbc.setSanitize(SanitizeState.FAILED),
        NotReadyBit.SANITIZE_FAILED,
        [3, 0x31, 0x03],
      ],
    ];
    for (const [name, enter, bit, sense] of states) {
      lu.sbc.setMediumPresent(true);
      lu.sbc.setSanitize(SanitizeState.IDLE);
      enter();
      for (const row of REGISTRY) {
        const cmd = commandFor(row);
        const refused = lu.sbc.rejectNotReady(cmd, NOT_READY_SERVED);
        expect(refused, `${row.name}, ${name}`).toBe((notReadyBits(row.policy.notReady) & bit) === 0);
        if (refused) expect(cmd.senseTriple).toEqual(sense);
      }
    }
    lu.sbc.setSanitize(SanitizeState.IDLE);
    lu.sbc.setMediumPresent(true);
  });

  it("persistent reservations: conflict as the row's class says, for each type and each kind of nexus", async () => {
    lu = await openPrLu();
    // Nexus 1 holds the reservation, 3 is registered, 2 is not.
    expect((await prout(lu, 1, 0, { saKey: 0xa })).status).toBe(ScsiStatus.GOOD);
    expect((await prout(lu, 3, 0, { saKey: 0xc })).status).toBe(ScsiStatus.GOOD);
    for (const type of [1, 3, 5, 6, 7, 8]) {
      expect((await prout(lu, 1, 1, { key: 0xa, type })).status, `RESERVE type ${type}`).toBe(
        ScsiStatus.GOOD,
      );
      const writeExclusive = type === 1 || type === 5 || type === 7;
      const registrantsHaveAccess = type >= 5;
      for (const row of REGISTRY) {
        for (const byte4 of byte4Variants(row)) {
          for (const nexus of [1, 2, 3]) {
            const cmd = commandFor(row, nexus, byte4);
            const c = PR_ACCESS.get(cmd.cdb);
            expect(c).toBe(decide(row.policy.pr, cmd.cdb));
            const holder = nexus === 1 || (nexus === 3 && type >= 7);
            const expected =
              !holder &&
              !(nexus === 3 && registrantsHaveAccess) &&
              (c === PrAccess.WRITE || (c === PrAccess.READ && !writeExclusive));
            const conflict = checkReservationConflict(lu, cmd, PR_ACCESS, SPC2_ACCESS);
            expect(conflict, `${row.name} byte4=${byte4} type ${type} nexus ${nexus}`).toBe(expected);
            if (conflict) expect([cmd.status, cmd.senseLength]).toEqual([ScsiStatus.RESERVATION_CONFLICT, 0]);
          }
        }
      }
      expect((await prout(lu, 1, 2, { key: 0xa, type })).status, `RELEASE type ${type}`).toBe(
        ScsiStatus.GOOD,
      );
    }
  });

  it("SPC-2 reservations: conflict as the row's spc2 flag says, for the holder and another nexus", async () => {
    lu = await openPrLu();
    expect((await cmdAs(lu, 1, [Opcode.RESERVE_6, 0, 0, 0, 0, 0])).status).toBe(ScsiStatus.GOOD);
    expect(lu.pr.spc2Active).toBe(true);
    for (const row of REGISTRY) {
      for (const byte4 of byte4Variants(row)) {
        for (const nexus of [1, 2]) {
          const cmd = commandFor(row, nexus, byte4);
          const a = SPC2_ACCESS.get(cmd.cdb);
          expect(a).toBe(decide(row.policy.spc2, cmd.cdb));
          const expected = a === Spc2Access.CONFLICT || (a === Spc2Access.HOLDER_ONLY && nexus !== 1);
          expect(
            checkReservationConflict(lu, cmd, PR_ACCESS, SPC2_ACCESS),
            `${row.name} byte4=${byte4} nexus ${nexus}`,
          ).toBe(expected);
        }
      }
    }
  });
});

describe('opcode registry: end to end through executeCommand', () => {
  let dir: { dir: string; cleanup: () => void };
  let lu: LogicalUnit;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await lu?.close();
    dir.cleanup();
  });

  it('RESERVE(10) and RELEASE(10) work without medium, as RESERVE(6) and RELEASE(6) do', async () => {
    lu = await openLu('ram', dir.dir, { removable: true });
    expect((await run(lu, makeCommand([0x1b, 0, 0, 0, 0x02, 0]))).status).toBe(ScsiStatus.GOOD); // eject
    const tur = await run(lu, makeCommand([0, 0, 0, 0, 0, 0]));
    expect(tur.senseTriple).toEqual([2, 0x3a, 0]);
    for (const cdb of [
      [Opcode.RESERVE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [Opcode.RELEASE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [Opcode.RESERVE_6, 0, 0, 0, 0, 0],
      [Opcode.RELEASE_6, 0, 0, 0, 0, 0],
    ]) {
      expect((await run(lu, makeCommand(cdb))).status, `opcode ${cdb[0]}`).toBe(ScsiStatus.GOOD);
    }
  });

  it('the exclusive rows close the LU-wide gate when they run; a plain WRITE does not', async () => {
    lu = await openLu('ram', dir.dir);
    const sixteen = (op: number, blocks: number, at: number): number[] => {
      const c = Buffer.alloc(16);
      c[0] = op;
      c.writeUInt32BE(1, 6); // LBA 1
      c[at] = blocks;
      return [...c];
    };
    const commands: [number, number[], number][] = [
      [Opcode.COMPARE_AND_WRITE, sixteen(Opcode.COMPARE_AND_WRITE, 1, 13), 1024],
      [Opcode.ORWRITE_16, sixteen(Opcode.ORWRITE_16, 1, 13), 512],
      [Opcode.WRITE_ATOMIC_16, sixteen(Opcode.WRITE_ATOMIC_16, 1, 13), 512],
      [Opcode.WRITE_16, sixteen(Opcode.WRITE_16, 1, 13), 512],
    ];
    for (const [op, cdb, bytes] of commands) {
      const cmd = makeCommand(cdb, { dataOut: Buffer.alloc(bytes) });
      executeCommand(lu, cmd);
      const exclusive = REGISTRY.find((r) => r.opcode === op)!.policy.exclusive;
      expect(lu.sbc.gate === cmd, `opcode ${op}`).toBe(exclusive);
      await cmd.finished;
      expect(cmd.status, `opcode ${op}`).toBe(ScsiStatus.GOOD);
      expect(lu.sbc.gate).toBeNull();
    }
  });

  it('a known but unimplemented command admitted in standby fails as unsupported, not NOT READY', async () => {
    lu = await openLu('ram', dir.dir);
    const info: NexusInfo = { ...NEXUSES[1]!, targetPortGroup: 1 };
    lu.nexuses = { get: (id) => (id === 1 ? info : undefined) };
    const table = new PortGroupTable({
      implicitTransitionSec: 0,
      groups: [{ id: 1, relativeTargetPortIds: [1] }],
    });
    table.attach(lu);
    await run(lu, makeCommand([0x03, 0, 0, 0, 18, 0], { dataLength: 18 })); // takes 29/00
    table.setPortGroupState(1, AluaState.STANDBY);
    await run(lu, makeCommand([0x03, 0, 0, 0, 18, 0], { dataLength: 18 })); // takes 2A/06
    const rdr = await run(lu, makeCommand([Opcode.RECEIVE_DIAGNOSTIC_RESULTS, 0, 0, 0, 0, 0]));
    expect(rdr.senseTriple).toEqual([5, 0x20, 0]); // INVALID COMMAND OPERATION CODE
    const tur = await run(lu, makeCommand([0, 0, 0, 0, 0, 0]));
    expect(tur.senseTriple).toEqual([2, 0x04, 0x0b]); // standby
    const unknown = await run(lu, makeCommand([0xee, 0, 0, 0, 0, 0]));
    expect(unknown.senseTriple).toEqual([2, 0x04, 0x0b]); // the unknown-opcode policy: refused
  });
});

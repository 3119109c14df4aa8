/**
 * One policy flag of every command, compiled for the hot path from the rows of the
 * opcode registry (opcode-registry.ts compiles one map per flag at module load):
 *
 *   byOpcode[opcode]                 the value, or BY_SERVICE_ACTION when the rows of
 *                                    the opcode differ by service action
 *   byServiceAction[opcode << 5 | sa] the value per SERVICE ACTION (CDB byte 1 bits 4..0,
 *                                    SPC-4 4.2.2.2)
 *   a value >= BY_CDB                byCdb[value - BY_CDB]: decided by one CDB bit test
 *
 * get() costs two or three array loads and allocates nothing. Plain values are below
 * BY_CDB (0x80).
 */
import type { Decision } from './command-policy.ts';

/** byOpcode marker: look the value up by service action. */
export const BY_SERVICE_ACTION = 0xff;
/** Values from here on index byCdb. */
export const BY_CDB = 0x80;

/** A CDB-dependent value: `then` when (cdb[byte] & mask) === value, else `otherwise`. */
export interface CompiledTest {
  readonly byte: number;
  readonly mask: number;
  readonly value: number;
  readonly then: number;
  readonly otherwise: number;
}

/**
 * One row's value for the flag being compiled. `serviceAction`: absent for an opcode
 * without service actions, 'other' for every service action of the opcode that no
 * other entry names.
 */
export interface MapEntry {
  readonly opcode: number;
  readonly serviceAction: number | 'other' | undefined;
  readonly value: Decision<number>;
  /** For error messages. */
  readonly name: string;
}

export class OpcodeMap {
  readonly byOpcode = new Uint8Array(256);
  readonly byServiceAction = new Uint8Array(256 * 32);
  readonly byCdb: CompiledTest[] = [];

  /** The value for the command whose CDB is `cdb`. Hot path: no allocation. */
  get(cdb: Buffer): number {
    const op = cdb[0]!;
    let v = this.byOpcode[op]!;
    if (v === BY_SERVICE_ACTION) v = this.byServiceAction[(op << 5) | (cdb[1]! & 0x1f)]!;
    if (v < BY_CDB) return v;
    const t = this.byCdb[v - BY_CDB]!;
    return (cdb[t.byte]! & t.mask) === t.value ? t.then : t.otherwise;
  }

  /**
   * Compile `entries` (one per registry row); opcodes without an entry get `unknown`.
   * Throws on a registry that is not well formed: two rows for one opcode or service
   * action, rows with and without service action for one opcode, service-action rows
   * without an 'other' row, values out of range.
   */
  static compile(entries: readonly MapEntry[], unknown: number): OpcodeMap {
    const m = new OpcodeMap();
    const byOpcode = new Map<number, MapEntry[]>();
    for (const e of entries) {
      if (!Number.isInteger(e.opcode) || e.opcode < 0 || e.opcode > 0xff)
        throw new Error(`${e.name}: bad opcode`);
      let list = byOpcode.get(e.opcode);
      if (list === undefined) byOpcode.set(e.opcode, (list = []));
      list.push(e);
    }
    m.byOpcode.fill(m.encode(unknown, 'unknown opcode'));
    for (const [op, list] of byOpcode) {
      const plain = list.filter((e) => e.serviceAction === undefined);
      if (plain.length > 0) {
        if (list.length > 1)
          throw new Error(`opcode ${hex(op)}: ${list.map((e) => e.name).join(', ')} overlap`);
        m.byOpcode[op] = m.encode(plain[0]!.value, plain[0]!.name);
        continue;
      }
      const other = list.filter((e) => e.serviceAction === 'other');
      if (other.length !== 1)
        throw new Error(`opcode ${hex(op)}: needs exactly one row for its other service actions`);
      const values = new Array<number>(32).fill(m.encode(other[0]!.value, other[0]!.name));
      const seen = new Set<number>();
      for (const e of list) {
        const sa = e.serviceAction;
        if (typeof sa !== 'number') continue;
        if (!Number.isInteger(sa) || sa < 0 || sa > 0x1f) throw new Error(`${e.name}: bad service action`);
        if (seen.has(sa)) throw new Error(`${e.name}: service action ${hex(sa)} of ${hex(op)} listed twice`);
        seen.add(sa);
        values[sa] = m.encode(e.value, e.name);
      }
      if (values.every((v) => v === values[0])) {
        m.byOpcode[op] = values[0]!;
      } else {
        m.byOpcode[op] = BY_SERVICE_ACTION;
        m.byServiceAction.set(values, op << 5);
      }
    }
    return m;
  }

  /** The byte that stands for `d` (a CDB-dependent decision gets a byCdb slot, shared). */
  private encode(d: Decision<number>, name: string): number {
    if (typeof d === 'number') {
      if (!Number.isInteger(d) || d < 0 || d >= BY_CDB) throw new Error(`${name}: value ${d} out of range`);
      return d;
    }
    const t: CompiledTest = {
      byte: d.when.byte,
      mask: d.when.mask,
      value: d.when.value,
      then: d.then,
      otherwise: d.otherwise,
    };
    if (
      this.encode(t.then, name) !== t.then ||
      this.encode(t.otherwise, name) !== t.otherwise ||
      t.byte < 0 ||
      t.byte > 15
    )
      throw new Error(`${name}: bad CDB test`);
    const i = this.byCdb.findIndex(
      (c) =>
        c.byte === t.byte &&
        c.mask === t.mask &&
        c.value === t.value &&
        c.then === t.then &&
        c.otherwise === t.otherwise,
    );
    if (i >= 0) return BY_CDB + i;
    if (this.byCdb.length >= BY_SERVICE_ACTION - BY_CDB) throw new Error('too many CDB-dependent decisions');
    this.byCdb.push(Object.freeze(t));
    return BY_CDB + this.byCdb.length - 1;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

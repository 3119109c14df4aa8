/**
 * SCSI through the nodes of a test cluster (cluster.ts), for the cluster safety tests:
 * hosts logged in on a chosen node, PERSISTENT RESERVE IN/OUT built byte by byte (SPC-4
 * 6.15 / 6.16), REPORT TARGET PORT GROUPS (SPC-4 6.36), a pipeline that keeps many WRITEs
 * in flight on one session, blocks stamped with who wrote them, and the nodes' JSON log
 * lines with their timestamps.
 *
 * Every outcome is kept exactly (status, sense key, ASC, ASCQ, and when the test process
 * saw it), so a test can say which commands completed before or after another one.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { expect } from 'vitest';
import { u16, u32 } from '../../src/shared/iscsi/pdu.ts';
import { ScsiStatus } from '../../src/shared/scsi/command.ts';
import {
  MaintenanceIn,
  Opcode as ScsiOpcode,
  PersistentReserveIn,
  PersistentReserveOut,
} from '../../src/shared/scsi/opcodes.ts';
import {
  Initiator,
  Opcode,
  RESERVED_TAG,
  TEST_UNIT_READY,
  nopOutBhs,
  read10,
  scsiCommandBhs,
  write10,
  type Pdu,
  type ScsiResult,
} from './initiator.ts';
import type { StartedCluster } from './cluster.ts';
import { proutCdb, proutParams, prinCdb, type ProutFields } from './scsi-pr.ts';

export { ScsiStatus };

/** PERSISTENT RESERVE OUT service actions (SPC-4 6.16.2). */
export const SA = PersistentReserveOut;
/** PERSISTENT RESERVE IN service actions (SPC-4 6.15.1). */
export const IN = PersistentReserveIn;

/** Persistent reservation TYPE (SPC-4 6.16.3.4 table 218). */
export const TYPE = { WE: 0x1, EA: 0x3, WERO: 0x5, EARO: 0x6, WEAR: 0x7, EAAR: 0x8 } as const;

/** Sense as [SENSE KEY, ASC, ASCQ] (SPC-4 annex F). */
export type Sense = readonly [number, number, number];
export const SENSE = {
  /** NOT READY, ASYMMETRIC ACCESS STATE TRANSITION: a fenced node, or PR OUT without the cluster state. */
  ALUA_TRANSITION: [0x02, 0x04, 0x0a],
  REGISTRATIONS_PREEMPTED: [0x06, 0x2a, 0x05],
  RESERVATIONS_PREEMPTED: [0x06, 0x2a, 0x03],
  RESERVATIONS_RELEASED: [0x06, 0x2a, 0x04],
  BUS_DEVICE_RESET: [0x06, 0x29, 0x03],
  POWER_ON_RESET: [0x06, 0x29, 0x00],
  COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: [0x06, 0x2f, 0x00],
} as const satisfies Record<string, Sense>;

/** Asymmetric access states (SPC-4 6.36.2 table 275). */
export const ALUA = {
  ACTIVE_OPTIMIZED: 0x0,
  ACTIVE_NON_OPTIMIZED: 0x1,
  STANDBY: 0x2,
  UNAVAILABLE: 0x3,
  TRANSITIONING: 0xf,
} as const;

export const BLOCK = 512;

/** Fixed-format sense (SPC-4 4.5.3) as [SENSE KEY, ASC, ASCQ]; null without sense. */
export function senseOf(b: Buffer): Sense | null {
  if (b.length < 14) return null;
  return [b[2]! & 0x0f, b[12]!, b[13]!];
}

/** A one-line description of an outcome, for assertions: "GOOD", "status 0x2 sense 02/04/0a", "status 0x18". */
export function outcomeOf(o: { status: number; sense: Buffer }): string {
  const s = senseOf(o.sense);
  const st = o.status === 0 ? 'GOOD' : `status 0x${o.status.toString(16)}`;
  return s === null ? st : `${st} sense ${s.map((x) => x.toString(16).padStart(2, '0')).join('/')}`;
}

// ---------------------------------------------------------------------------------------------
// Expected outcomes

export function good(r: ScsiResult, what: string): void {
  expect(outcomeOf(r), what).toBe('GOOD');
}

/** RESERVATION CONFLICT, which carries no sense data (SAM-5 5.3.1). */
export function conflict(r: ScsiResult, what: string): void {
  expect(outcomeOf(r), what).toBe(`status 0x${ScsiStatus.RESERVATION_CONFLICT.toString(16)}`);
}

export function checkCondition(r: ScsiResult, want: Sense, what: string): void {
  expect({ status: r.status, sense: senseOf(r.sense) }, what).toEqual({
    status: ScsiStatus.CHECK_CONDITION,
    sense: want,
  });
}

/** NOT READY, ASYMMETRIC ACCESS STATE TRANSITION: a fenced node, or PR OUT without the cluster state. */
export function notReady(r: ScsiResult, what: string): void {
  checkCondition(r, SENSE.ALUA_TRANSITION, what);
}

/**
 * Run `cmd` again while it meets a unit attention (a host that logs in again, or whose
 * node changed state, has several queued); each one is pushed to `seen` as "6/2a/5".
 */
export async function pastUnitAttentions(
  cmd: () => Promise<ScsiResult>,
  seen: string[] = [],
): Promise<ScsiResult> {
  let r = await cmd();
  for (let i = 0; i < 12 && r.status === ScsiStatus.CHECK_CONDITION && senseOf(r.sense)?.[0] === 0x06; i++) {
    seen.push(
      senseOf(r.sense)!
        .map((x) => x.toString(16))
        .join('/'),
    );
    r = await cmd();
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// CDBs

// PR OUT / PR IN CDBs and parameter lists: the shared builders (SPC-4 6.15, 6.16).
export { proutCdb, proutParams, prinCdb, type ProutFields } from './scsi-pr.ts';
/** REPORT TARGET PORT GROUPS (SPC-4 6.36 table 273): MAINTENANCE IN, SA 0Ah, 6-9 ALLOCATION LENGTH. */
export function rtpgCdb(alloc = 4096): Buffer {
  const c = Buffer.alloc(12);
  c[0] = ScsiOpcode.MAINTENANCE_IN;
  c[1] = MaintenanceIn.REPORT_TARGET_PORT_GROUPS;
  c.writeUInt32BE(alloc, 6);
  return c;
}

/** WRITE SAME(16) (SBC-4 5.50): `blocks` blocks from `lba`, one block of data. */
export function writeSame16(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(16);
  c[0] = ScsiOpcode.WRITE_SAME_16;
  c.writeBigUInt64BE(BigInt(lba), 2);
  c.writeUInt32BE(blocks, 10);
  return c;
}

/** RESERVE(6) / RELEASE(6) (SPC-2 7.21 / 7.17). */
export const RESERVE6 = Buffer.from([0x16, 0, 0, 0, 0, 0]);
export const RELEASE6 = Buffer.from([0x17, 0, 0, 0, 0, 0]);

// ---------------------------------------------------------------------------------------------
// Hosts

/** One session of one initiator port through one node's portal. */
export interface Host {
  readonly ini: Initiator;
  readonly name: string;
  /** Index of the node it logged in through. */
  readonly node: number;
  readonly initiatorName: string;
}

export const initiatorName = (name: string): string => `iqn.2026-11.io.spindle.test:${name}`;

export interface LoginHostOptions {
  isid?: Buffer;
  /** Operational keys instead of the defaults (large bursts, immediate and unsolicited data). */
  keys?: ReadonlyArray<readonly [string, string]>;
  /** Take unit attentions with TEST UNIT READY until GOOD (default true). */
  settle?: boolean;
}

/**
 * Log `name` in through node `node` (its own InitiatorName: an initiator port of its own).
 * Large bursts and immediate data, so a WRITE goes out in one or two PDUs.
 */
export async function loginHost(
  c: StartedCluster,
  node: number,
  name: string,
  o: LoginHostOptions = {},
): Promise<Host> {
  const n = c.nodes[node]!;
  const ini = await Initiator.connect(n.port, n.host, 10_000);
  try {
    const r = await ini.login({
      targetName: c.iqn,
      initiatorName: initiatorName(name),
      ...(o.isid === undefined ? {} : { isid: o.isid }),
      timeoutMs: 10_000,
      keys: o.keys ?? [
        ['MaxRecvDataSegmentLength', '262144'],
        ['InitialR2T', 'No'],
        ['ImmediateData', 'Yes'],
        ['FirstBurstLength', '262144'],
        ['MaxBurstLength', '1048576'],
      ],
    });
    if (!r.ok)
      throw new Error(
        `${name}: login through node ${n.id} failed (class ${r.statusClass} detail ${r.statusDetail})`,
      );
  } catch (err) {
    ini.close();
    throw err;
  }
  // Unit attentions are reported as they are (tests look for them).
  ini.absorbFirstUnitAttention = false;
  const host: Host = { ini, name, node, initiatorName: initiatorName(name) };
  if (o.settle !== false) await settle(host);
  return host;
}

/**
 * TEST UNIT READY until GOOD: takes the unit attentions a new or returning nexus has, and
 * waits (up to `timeoutMs`) while the node is not ready (fenced, resynchronizing).
 */
export async function settle(h: Host, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const r = await h.ini.scsi(TEST_UNIT_READY, { edtl: 0, timeoutMs: 15_000 });
    if (r.status === ScsiStatus.GOOD) return;
    if (performance.now() > deadline)
      throw new Error(`${h.name}: TEST UNIT READY never GOOD (${outcomeOf(r)})`);
    if (senseOf(r.sense)?.[0] !== 0x06) await new Promise((res) => setTimeout(res, 100));
  }
}

export function closeAll(...hosts: (Host | undefined)[]): void {
  for (const h of hosts) h?.ini.close();
}

export function prout(
  h: Host,
  sa: number,
  type: number,
  f: ProutFields,
  timeoutMs = 30_000,
): Promise<ScsiResult> {
  return h.ini.scsi(proutCdb(sa, type), { write: true, edtl: 24, data: proutParams(f), timeoutMs });
}

/** REGISTER AND IGNORE EXISTING KEY with `key` through `h`, which must be GOOD (`what` names the step). */
export async function registerKey(h: Host, key: bigint, what: string): Promise<void> {
  good(await prout(h, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: key }), what);
}

export function tur(h: Host): Promise<ScsiResult> {
  return h.ini.scsi(TEST_UNIT_READY, { edtl: 0, timeoutMs: 15_000 });
}

export function writeBlocks(h: Host, lba: number, data: Buffer, timeoutMs = 15_000): Promise<ScsiResult> {
  return h.ini.scsi(write10(lba, data.length / BLOCK), { write: true, edtl: data.length, data, timeoutMs });
}

export function readBlocks(h: Host, lba: number, blocks: number, timeoutMs = 15_000): Promise<ScsiResult> {
  return h.ini.scsi(read10(lba, blocks), { read: true, edtl: blocks * BLOCK, timeoutMs });
}

/** Read `blocks` from `lba` in chunks of at most 2048 blocks (1 MiB); throws unless every READ is GOOD. */
export async function readRegion(h: Host, lba: number, blocks: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let at = 0; at < blocks; at += 2048) {
    const n = Math.min(2048, blocks - at);
    const r = await readBlocks(h, lba + at, n, 30_000);
    if (r.status !== ScsiStatus.GOOD) throw new Error(`${h.name}: READ ${lba + at}+${n}: ${outcomeOf(r)}`);
    parts.push(r.data);
  }
  return Buffer.concat(parts);
}

/**
 * Run `cmd` again while it meets ASYMMETRIC ACCESS STATE CHANGED (06/2A/06), which every
 * nexus of a node gets when some node's port group changes state (SPC-4 5.16.2.5): for
 * commands whose test is about something else.
 */
export async function pastAccessStateChanged(cmd: () => Promise<ScsiResult>): Promise<ScsiResult> {
  let r = await cmd();
  for (
    let i = 0;
    i < 8 && r.status === ScsiStatus.CHECK_CONDITION && senseOf(r.sense)?.join() === '6,42,6';
    i++
  )
    r = await cmd();
  return r;
}

export interface Keys {
  generation: number;
  keys: bigint[];
}

/** READ KEYS (SPC-4 6.15.2 table 200): 0-3 PRGENERATION | 4-7 ADDITIONAL LENGTH | keys. */
export async function readKeys(h: Host): Promise<Keys> {
  const r = await pastAccessStateChanged(() =>
    h.ini.scsi(prinCdb(IN.READ_KEYS), { read: true, edtl: 8192, timeoutMs: 15_000 }),
  );
  if (r.status !== ScsiStatus.GOOD) throw new Error(`${h.name}: READ KEYS: ${outcomeOf(r)}`);
  const len = r.data.readUInt32BE(4);
  const keys: bigint[] = [];
  for (let at = 8; at < 8 + len; at += 8) keys.push(r.data.readBigUInt64BE(at));
  return { generation: r.data.readUInt32BE(0), keys };
}

export interface Reservation {
  generation: number;
  /** null: no persistent reservation. */
  key: bigint | null;
  type: number;
}

/** READ RESERVATION (SPC-4 6.15.3 tables 201, 202): 8-15 KEY | 21 SCOPE(7..4) TYPE(3..0). */
export async function readReservation(h: Host): Promise<Reservation> {
  const r = await pastAccessStateChanged(() =>
    h.ini.scsi(prinCdb(IN.READ_RESERVATION), { read: true, edtl: 8192, timeoutMs: 15_000 }),
  );
  if (r.status !== ScsiStatus.GOOD) throw new Error(`${h.name}: READ RESERVATION: ${outcomeOf(r)}`);
  const generation = r.data.readUInt32BE(0);
  if (r.data.readUInt32BE(4) === 0) return { generation, key: null, type: 0 };
  return { generation, key: r.data.readBigUInt64BE(8), type: r.data[21]! & 0x0f };
}

export interface PortGroup {
  group: number;
  state: number;
  ports: number[];
}

/** REPORT TARGET PORT GROUPS, length-only format (SPC-4 6.36.2 tables 274, 275). */
export async function reportPortGroups(h: Host): Promise<PortGroup[]> {
  const r = await pastAccessStateChanged(() =>
    h.ini.scsi(rtpgCdb(), { read: true, edtl: 4096, timeoutMs: 15_000 }),
  );
  if (r.status !== ScsiStatus.GOOD) throw new Error(`${h.name}: REPORT TARGET PORT GROUPS: ${outcomeOf(r)}`);
  const end = 4 + r.data.readUInt32BE(0);
  const out: PortGroup[] = [];
  for (let at = 4; at + 8 <= end;) {
    const count = r.data[at + 7]!;
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(r.data.readUInt16BE(at + 8 + i * 4 + 2));
    out.push({ group: r.data.readUInt16BE(at + 2), state: r.data[at]! & 0x0f, ports });
    at += 8 + count * 4;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stamped blocks: who wrote a block, with which write

/**
 * A block as a test writer fills it: "SPDL", the writer's tag (4 bytes), the write's
 * sequence number and the block's own LBA, then `fill`.
 */
export function stamp(tag: string, seq: number, lba: number, blocks: number, fill = 0x5a): Buffer {
  if (tag.length !== 4) throw new Error('tags have 4 characters');
  const b = Buffer.alloc(blocks * BLOCK, fill);
  for (let i = 0; i < blocks; i++) {
    const o = i * BLOCK;
    b.write('SPDL', o, 'latin1');
    b.write(tag, o + 4, 'latin1');
    b.writeUInt32BE(seq, o + 8);
    b.writeUInt32BE(lba + i, o + 12);
  }
  return b;
}

export type Stamp =
  { kind: 'zero' } | { kind: 'stamp'; tag: string; seq: number; lba: number } | { kind: 'other' };

export function readStamp(block: Buffer): Stamp {
  if (block.toString('latin1', 0, 4) === 'SPDL')
    return {
      kind: 'stamp',
      tag: block.toString('latin1', 4, 8),
      seq: block.readUInt32BE(8),
      lba: block.readUInt32BE(12),
    };
  return block.every((x) => x === 0) ? { kind: 'zero' } : { kind: 'other' };
}

/** Block `i` of `region`. */
export function blockOf(region: Buffer, i: number): Buffer {
  return region.subarray(i * BLOCK, (i + 1) * BLOCK);
}

// ---------------------------------------------------------------------------------------------
// Many commands in flight on one session

export interface Outcome {
  status: number;
  sense: Buffer;
  /** performance.now() when the test process read the status. */
  at: number;
  /** The same moment on the wall clock (Date.now()), to compare with node log times. */
  wall: number;
}

/**
 * Many SCSI commands outstanding on one session: one reader hands responses to their
 * commands by ITT, answers R2Ts and target NOP-In pings. (Initiator.scsi() runs one
 * command at a time.) A command whose session ends first stays without outcome.
 */
export class Pipeline {
  readonly #ini: Initiator;
  readonly #waiting = new Map<number, { data: Buffer; resolve: (o: Outcome | undefined) => void }>();
  #running = false;
  error: Error | null = null;

  constructor(ini: Initiator) {
    this.#ini = ini;
  }

  get outstanding(): number {
    return this.#waiting.size;
  }

  /** Room in the CmdSN window (RFC 7143 4.2.2.1: CmdSN <= MaxCmdSN). */
  #windowOpen(): boolean {
    return ((this.#ini.maxCmdSN - this.#ini.cmdSN) | 0) >= 0;
  }

  /**
   * Send WRITE(10) of `data` at `lba` (immediate and unsolicited data as negotiated, the
   * rest on R2T). Resolves once it is sent, with the promise of its outcome.
   */
  write(lba: number, data: Buffer): Promise<{ done: Promise<Outcome | undefined> }> {
    return this.command(write10(lba, data.length / BLOCK), data);
  }

  /**
   * Send any command carrying `data` out (none when empty) with task attribute `attr`
   * (SAM-5 8.6: 1 SIMPLE, 2 ORDERED, 3 HEAD OF QUEUE).
   */
  async command(cdb: Buffer, data: Buffer, attr = 1): Promise<{ done: Promise<Outcome | undefined> }> {
    for (let i = 0; !this.#windowOpen(); i++) {
      if (i > 4000 || this.#ini.isClosed) throw new Error('CmdSN window stayed closed');
      await new Promise((r) => setTimeout(r, 5));
    }
    const ini = this.#ini;
    const n = ini.negotiated;
    const itt = ini.allocItt();
    const cmdSN = ini.takeCmdSN();
    const write = data.length > 0;
    const imm =
      write && n.immediateData
        ? Math.min(data.length, n.firstBurstLength, n.targetMaxRecvDataSegmentLength)
        : 0;
    const unsolicitedEnd = !write || n.initialR2T ? imm : Math.min(data.length, n.firstBurstLength);
    const done = new Promise<Outcome | undefined>((resolve) => this.#waiting.set(itt, { data, resolve }));
    ini.send(
      scsiCommandBhs({
        final: unsolicitedEnd === imm,
        write,
        attr,
        lun: 0,
        itt,
        edtl: data.length,
        cmdSN,
        expStatSN: ini.expStatSN,
        cdb,
      }),
      data.subarray(0, imm),
    );
    if (unsolicitedEnd > imm) ini.sendDataOut(itt, 0, RESERVED_TAG, data, imm, unsolicitedEnd - imm);
    this.#pump();
    return { done };
  }

  #pump(): void {
    if (this.#running) return;
    this.#running = true;
    void (async () => {
      try {
        while (this.#waiting.size > 0) {
          const p: Pdu = await this.#ini.nextPdu(60_000);
          if (p.opcode === Opcode.NOP_IN && p.itt === RESERVED_TAG && p.ttt !== RESERVED_TAG) {
            this.#ini.send(
              nopOutBhs({
                immediate: true,
                itt: RESERVED_TAG,
                ttt: p.ttt,
                cmdSN: this.#ini.cmdSN,
                expStatSN: this.#ini.expStatSN,
              }),
            );
            continue;
          }
          const w = this.#waiting.get(p.itt);
          if (w === undefined) continue;
          if (p.opcode === Opcode.R2T) {
            this.#ini.sendDataOut(p.itt, 0, p.ttt, w.data, u32(p.bhs, 40), u32(p.bhs, 44));
          } else if (p.opcode === Opcode.SCSI_RESPONSE) {
            this.#waiting.delete(p.itt);
            const sense =
              p.data.length >= 2 ? Buffer.from(p.data.subarray(2, 2 + u16(p.data, 0))) : Buffer.alloc(0);
            w.resolve({ status: p.bhs[3]!, sense, at: performance.now(), wall: Date.now() });
          } else if (p.opcode === Opcode.REJECT) {
            throw new Error(`target rejected itt ${p.itt}`);
          }
        }
      } catch (err) {
        // The session ended (or went silent): what is still waiting never gets a status.
        if (!this.#ini.isClosed) this.error = err as Error;
        for (const [, w] of this.#waiting) w.resolve(undefined);
        this.#waiting.clear();
      } finally {
        this.#running = false;
      }
    })();
  }
}

/** One WRITE of a {@link WriteStream}. */
export interface StreamedWrite {
  seq: number;
  lba: number;
  blocks: number;
  /** performance.now() when it was sent. */
  sentAt: number;
  /** Date.now() when it was sent. */
  sentWall: number;
  outcome: Outcome | undefined;
  /** Settled (with or without outcome). */
  settled: boolean;
}

export interface WriteStreamOptions {
  /** First LBA of the region; write `seq` goes to `lba + seq * blocksPerWrite`. */
  lba: number;
  /** Number of writes at most (the region holds that many). */
  writes: number;
  blocksPerWrite: number;
  /** Commands in flight. */
  depth: number;
  /** Writer tag in every block (4 characters). */
  tag: string;
  /** Stop sending after the first write that is not GOOD (default true). */
  stopOnFailure?: boolean;
  /** Pause after each WRITE sent (ms; default none): a steady stream instead of a flood. */
  pauseMs?: number;
}

/**
 * A host writing stamped blocks as fast as it can with `depth` WRITEs in flight, each to
 * its own place (write `seq` covers its own blocks only), until stopped, the region is
 * full, or (by default) a write fails.
 */
export class WriteStream {
  readonly writes: StreamedWrite[] = [];
  readonly pipe: Pipeline;
  readonly #o: WriteStreamOptions;
  #stop = false;
  #all: Promise<void>[] = [];
  readonly #sender: Promise<void>;

  constructor(host: Host, o: WriteStreamOptions) {
    this.#o = o;
    this.pipe = new Pipeline(host.ini);
    this.#sender = this.#send();
  }

  get good(): number {
    return this.writes.filter((w) => w.outcome?.status === ScsiStatus.GOOD).length;
  }

  get sent(): number {
    return this.writes.length;
  }

  lbaOf(seq: number): number {
    return this.#o.lba + seq * this.#o.blocksPerWrite;
  }

  async #send(): Promise<void> {
    const o = this.#o;
    for (let seq = 0; seq < o.writes && !this.#stop; seq++) {
      while (this.pipe.outstanding >= o.depth && !this.#stop) await new Promise((r) => setTimeout(r, 1));
      if (this.#stop) break;
      const lba = this.lbaOf(seq);
      const w: StreamedWrite = {
        seq,
        lba,
        blocks: o.blocksPerWrite,
        sentAt: performance.now(),
        sentWall: Date.now(),
        outcome: undefined,
        settled: false,
      };
      this.writes.push(w);
      let pending: { done: Promise<Outcome | undefined> };
      try {
        pending = await this.pipe.write(lba, stamp(o.tag, seq, lba, o.blocksPerWrite));
      } catch {
        w.settled = true;
        break;
      }
      this.#all.push(
        pending.done.then((out) => {
          w.outcome = out;
          w.settled = true;
          if (o.stopOnFailure !== false && (out === undefined || out.status !== ScsiStatus.GOOD))
            this.#stop = true;
        }),
      );
      if (o.pauseMs !== undefined) await new Promise((r) => setTimeout(r, o.pauseMs));
    }
  }

  /** Wait until `n` writes completed GOOD (or throw after `timeoutMs`). */
  async waitGood(n: number, timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.good < n) {
      if (performance.now() > deadline)
        throw new Error(`only ${this.good} of ${n} writes GOOD in ${timeoutMs} ms`);
      if (this.#stop && this.writes.every((w) => w.settled))
        throw new Error(`the stream stopped after ${this.good} GOOD writes`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Stop sending; resolves when every sent write has its outcome (or `timeoutMs` passed). */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.#stop = true;
    await this.#sender;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.#all), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Node logs

export interface LogLine {
  /** Wall-clock time (ms since the epoch, pino `time`). */
  time: number;
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** The JSON log lines of a node's output (other lines are skipped). */
export function logLines(output: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const v = JSON.parse(line) as LogLine;
      if (typeof v.msg === 'string' && typeof v.time === 'number') out.push(v);
    } catch {}
  }
  return out;
}

/** Log lines of node `i` (every incarnation) whose message contains `text`. */
export function linesOf(c: StartedCluster, i: number, text: string): LogLine[] {
  return logLines(c.nodes[i]!.output()).filter((l) => l.msg.includes(text));
}

/** The same, for the node's current incarnation only (since its last start). */
export function currentLinesOf(c: StartedCluster, i: number, text: string): LogLine[] {
  const out = c.nodes[i]!.output();
  return logLines(out.slice(out.lastIndexOf('--- start node '))).filter((l) => l.msg.includes(text));
}

/**
 * With SPINDLE_TEST_LOGS=DIR set, write every node's output to DIR/NAME-NODE.log (for
 * looking at what the nodes did in a failed run).
 */
export function saveLogs(c: StartedCluster | undefined, name: string): void {
  const dir = process.env['SPINDLE_TEST_LOGS'];
  if (dir === undefined || dir === '' || c === undefined) return;
  for (const n of c.nodes) writeFileSync(path.join(dir, `${name}-${n.id}.log`), n.output());
}

/** Poll `probe` until it returns true (throws after `timeoutMs` with `what`). */
export async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Steady I/O from one host

export interface IoRecord {
  op: 'write' | 'read';
  lba: number;
  seq: number;
  /** The final outcome (after retries). */
  status: number;
  sense: Buffer;
  /** Date.now() when the final status arrived. */
  wall: number;
  /** Outcomes retried before the final one, as outcomeOf() strings. */
  retried: string[];
  /** A READ whose data was not what this loop last wrote there with GOOD (null: fine). */
  mismatch: string | null;
}

/** What a multipath host retries (on this path, here): NOT READY 04/0A and unit attentions. */
export function isRetryable(r: { status: number; sense: Buffer }): boolean {
  const s = senseOf(r.sense);
  return (
    r.status === ScsiStatus.CHECK_CONDITION &&
    s !== null &&
    (s[0] === 0x06 || (s[0] === 0x02 && s[1] === 0x04 && s[2] === 0x0a))
  );
}

export interface IoLoopOptions {
  lba: number;
  blocks: number;
  tag: string;
  pauseMs?: number;
  /** Retry a command while its outcome is retryable (isRetryable), for up to this long (ms; default 0: no retries). */
  retryForMs?: number;
}

/**
 * One host doing WRITE then READ of one stamped block at a time over its own `blocks`
 * blocks from `lba`, round and round, until stop(): every outcome is recorded, and every
 * READ is checked against the last GOOD WRITE of that block.
 */
export class IoLoop {
  readonly records: IoRecord[] = [];
  readonly #host: Host;
  readonly #o: IoLoopOptions;
  #stop = false;
  readonly #done: Promise<void>;
  error: Error | null = null;

  constructor(host: Host, o: IoLoopOptions) {
    this.#host = host;
    this.#o = o;
    this.#done = this.#run();
  }

  async #withRetries(run: () => Promise<ScsiResult>): Promise<{ r: ScsiResult; retried: string[] }> {
    const retried: string[] = [];
    const deadline = Date.now() + (this.#o.retryForMs ?? 0);
    let r = await run();
    while (isRetryable(r) && Date.now() < deadline) {
      retried.push(outcomeOf(r));
      await new Promise((res) => setTimeout(res, 10));
      r = await run();
    }
    return { r, retried };
  }

  async #run(): Promise<void> {
    const written = new Map<number, Buffer>();
    const o = this.#o;
    try {
      for (let seq = 0; !this.#stop; seq++) {
        const lba = o.lba + (seq % o.blocks);
        const data = stamp(o.tag, seq, lba, 1);
        const w = await this.#withRetries(() => writeBlocks(this.#host, lba, data, 30_000));
        this.records.push({
          op: 'write',
          lba,
          seq,
          status: w.r.status,
          sense: w.r.sense,
          wall: Date.now(),
          retried: w.retried,
          mismatch: null,
        });
        if (w.r.status === ScsiStatus.GOOD) written.set(lba, data);
        const r = await this.#withRetries(() => readBlocks(this.#host, lba, 1, 30_000));
        const want = written.get(lba);
        let mismatch: string | null = null;
        if (r.r.status === ScsiStatus.GOOD && want !== undefined && !r.r.data.equals(want))
          mismatch = `lba ${lba}: read ${JSON.stringify(readStamp(r.r.data))}, last GOOD write ${JSON.stringify(readStamp(want))}`;
        this.records.push({
          op: 'read',
          lba,
          seq,
          status: r.r.status,
          sense: r.r.sense,
          wall: Date.now(),
          retried: r.retried,
          mismatch,
        });
        await new Promise((res) => setTimeout(res, o.pauseMs ?? 5));
      }
    } catch (err) {
      this.error = err as Error;
    }
  }

  /** Final outcomes other than `ok` (default: GOOD), as "write 12 at T: status 0x2 sense 02/04/0a" lines. */
  unexpected(ok: (r: IoRecord) => boolean = (r) => r.status === ScsiStatus.GOOD): string[] {
    return this.records
      .filter((r) => !ok(r) || r.mismatch !== null)
      .map((r) => `${r.op} ${r.seq} at ${r.wall}: ${r.mismatch ?? outcomeOf(r)}`);
  }

  /** Every retried outcome, as "write 12 at T: ..." lines. */
  retries(): string[] {
    return this.records.flatMap((r) => r.retried.map((x) => `${r.op} ${r.seq} at ${r.wall}: ${x}`));
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}

/**
 * A small iSCSI initiator for tests (RFC 7143), over node:net. It can send any PDU
 * sequence, well formed or not: every BHS field of the initiator PDUs is settable, raw
 * bytes can be written, and digests can be corrupted on purpose. It reads target PDUs
 * (with optional header and data digests) and offers conveniences for the usual flows:
 * `login()` (security + operational stages, optional one-way or mutual CHAP), `scsi()` (R2T,
 * Data-Out, Data-In, SCSI Response), NOP-Out pings, Text, Logout.
 *
 * Every wait is bounded: `nextPdu(timeoutMs)` and `expectClose(timeoutMs)` reject or
 * resolve in time, so no test can hang on a silent target.
 *
 * Written from RFC 7143 for this project; not derived from any other initiator.
 */
import net from 'node:net';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import {
  BHS_LENGTH,
  Opcode,
  RESERVED_TAG,
  ScsiCmdFlags,
  ahsLength,
  dataSegmentLength,
  encodeLun,
  opcodeOf,
  pad4,
  putU16,
  putU32,
  u16,
  u32,
} from '../../src/shared/iscsi/pdu.ts';
import { crc32c, readDigest, writeDigest } from '../../src/shared/iscsi/digest.ts';

export { Opcode, RESERVED_TAG } from '../../src/shared/iscsi/pdu.ts';

export const DEFAULT_TIMEOUT_MS = 3000;

// ---------------------------------------------------------------------------------------------
// BHS builders for initiator PDUs (RFC 7143 11.3, 11.5, 11.7, 11.10, 11.12, 11.14, 11.16,
// 11.18). Every field is settable; unset fields get the value a correct initiator uses.

/** Fields common to every BHS. */
export interface BhsCommon {
  /** I bit (immediate delivery). */
  immediate?: boolean;
  /** Byte 1 as a whole; overrides the flags the builder computes. */
  flagsByte?: number;
  /** TotalAHSLength in 4-byte words (the AHS bytes themselves are passed to send()). */
  totalAhsWords?: number;
  /** DataSegmentLength; by default the length of the data passed to send(). Use to lie. */
  dsl?: number;
  /** LUN number (encoded single-level) or a raw 8-byte field. */
  lun?: number | Uint8Array;
  itt?: number;
}

function beginBhs(opcode: number, c: BhsCommon, flags: number): Buffer {
  const b = Buffer.alloc(BHS_LENGTH);
  b[0] = (opcode & 0x3f) | (c.immediate ? 0x40 : 0);
  b[1] = c.flagsByte ?? flags;
  b[4] = c.totalAhsWords ?? 0;
  if (c.dsl !== undefined) setDsl(b, c.dsl);
  if (c.lun !== undefined) {
    if (typeof c.lun === 'number') encodeLun(b, 8, c.lun);
    else Buffer.from(c.lun).copy(b, 8, 0, 8);
  }
  putU32(b, 16, c.itt ?? 0);
  return b;
}

export function setDsl(b: Buffer, n: number): void {
  b[5] = (n >>> 16) & 0xff;
  b[6] = (n >>> 8) & 0xff;
  b[7] = n & 0xff;
}

export interface LoginFields extends BhsCommon {
  transit?: boolean;
  cont?: boolean;
  csg?: number;
  nsg?: number;
  versionMax?: number;
  versionMin?: number;
  isid?: Uint8Array;
  tsih?: number;
  cid?: number;
  cmdSN?: number;
  expStatSN?: number;
}

/** Login Request (RFC 7143 11.12). The I bit is always set on Login Requests. */
export function loginBhs(f: LoginFields = {}): Buffer {
  const flags = (f.transit ? 0x80 : 0) | (f.cont ? 0x40 : 0) | (((f.csg ?? 0) & 3) << 2) | ((f.nsg ?? 0) & 3);
  const b = beginBhs(Opcode.LOGIN_REQUEST, { ...f, immediate: f.immediate ?? true }, flags);
  b[2] = f.versionMax ?? 0;
  b[3] = f.versionMin ?? 0;
  Buffer.from(f.isid ?? DEFAULT_ISID).copy(b, 8, 0, 6);
  putU16(b, 14, f.tsih ?? 0);
  putU16(b, 20, f.cid ?? 0);
  putU32(b, 24, f.cmdSN ?? 0);
  putU32(b, 28, f.expStatSN ?? 0);
  return b;
}

export interface TextFields extends BhsCommon {
  final?: boolean;
  cont?: boolean;
  ttt?: number;
  cmdSN?: number;
  expStatSN?: number;
}

/** Text Request (RFC 7143 11.10). */
export function textBhs(f: TextFields = {}): Buffer {
  const b = beginBhs(Opcode.TEXT_REQUEST, f, ((f.final ?? true) ? 0x80 : 0) | (f.cont ? 0x40 : 0));
  putU32(b, 20, f.ttt ?? RESERVED_TAG);
  putU32(b, 24, f.cmdSN ?? 0);
  putU32(b, 28, f.expStatSN ?? 0);
  return b;
}

export interface NopOutFields extends BhsCommon {
  ttt?: number;
  cmdSN?: number;
  expStatSN?: number;
}

/** NOP-Out (RFC 7143 11.18). */
export function nopOutBhs(f: NopOutFields = {}): Buffer {
  const b = beginBhs(Opcode.NOP_OUT, f, 0x80);
  putU32(b, 20, f.ttt ?? RESERVED_TAG);
  putU32(b, 24, f.cmdSN ?? 0);
  putU32(b, 28, f.expStatSN ?? 0);
  return b;
}

export interface ScsiCommandFields extends BhsCommon {
  final?: boolean;
  read?: boolean;
  write?: boolean;
  /** Task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA). */
  attr?: number;
  edtl?: number;
  cmdSN?: number;
  expStatSN?: number;
  /** Up to 16 bytes (longer CDBs need an AHS). */
  cdb?: Uint8Array;
}

/** SCSI Command (RFC 7143 11.3). */
export function scsiCommandBhs(f: ScsiCommandFields = {}): Buffer {
  const flags =
    ((f.final ?? true) ? ScsiCmdFlags.FINAL : 0) |
    (f.read ? ScsiCmdFlags.READ : 0) |
    (f.write ? ScsiCmdFlags.WRITE : 0) |
    ((f.attr ?? 1) & ScsiCmdFlags.ATTR_MASK);
  const b = beginBhs(Opcode.SCSI_COMMAND, { ...f, lun: f.lun ?? 0 }, flags);
  putU32(b, 20, f.edtl ?? 0);
  putU32(b, 24, f.cmdSN ?? 0);
  putU32(b, 28, f.expStatSN ?? 0);
  if (f.cdb) Buffer.from(f.cdb).copy(b, 32, 0, Math.min(16, f.cdb.length));
  return b;
}

export interface DataOutFields extends BhsCommon {
  final?: boolean;
  ttt?: number;
  expStatSN?: number;
  dataSN?: number;
  bufferOffset?: number;
}

/** SCSI Data-Out (RFC 7143 11.7). */
export function dataOutBhs(f: DataOutFields = {}): Buffer {
  const b = beginBhs(Opcode.DATA_OUT, { ...f, lun: f.lun ?? 0 }, (f.final ?? true) ? 0x80 : 0);
  putU32(b, 20, f.ttt ?? RESERVED_TAG);
  putU32(b, 28, f.expStatSN ?? 0);
  putU32(b, 36, f.dataSN ?? 0);
  putU32(b, 40, f.bufferOffset ?? 0);
  return b;
}

export interface LogoutFields extends BhsCommon {
  /** 0 close session, 1 close connection, 2 remove connection for recovery. */
  reason?: number;
  cid?: number;
  cmdSN?: number;
  expStatSN?: number;
}

/** Logout Request (RFC 7143 11.14). */
export function logoutBhs(f: LogoutFields = {}): Buffer {
  const b = beginBhs(Opcode.LOGOUT_REQUEST, f, 0x80 | ((f.reason ?? 0) & 0x7f));
  putU16(b, 20, f.cid ?? 0);
  putU32(b, 24, f.cmdSN ?? 0);
  putU32(b, 28, f.expStatSN ?? 0);
  return b;
}

export interface TmfFields extends BhsCommon {
  /** Function code (RFC 7143 11.5.1). */
  fn?: number;
  rtt?: number;
  cmdSN?: number;
  expStatSN?: number;
  refCmdSN?: number;
  expDataSN?: number;
}

/** Task Management Function Request (RFC 7143 11.5). */
export function tmfBhs(f: TmfFields = {}): Buffer {
  const b = beginBhs(Opcode.TASK_MGMT_REQUEST, { ...f, lun: f.lun ?? 0 }, 0x80 | ((f.fn ?? 1) & 0x7f));
  putU32(b, 20, f.rtt ?? RESERVED_TAG);
  putU32(b, 24, f.cmdSN ?? 0);
  putU32(b, 28, f.expStatSN ?? 0);
  putU32(b, 32, f.refCmdSN ?? 0);
  putU32(b, 36, f.expDataSN ?? 0);
  return b;
}

export interface SnackFields extends BhsCommon {
  /** 0 Data/R2T, 1 status, 2 DataACK, 3 R-Data. */
  type?: number;
  ttt?: number;
  expStatSN?: number;
  begRun?: number;
  runLength?: number;
}

/** SNACK Request (RFC 7143 11.16). */
export function snackBhs(f: SnackFields = {}): Buffer {
  const b = beginBhs(Opcode.SNACK_REQUEST, f, 0x80 | ((f.type ?? 0) & 0x0f));
  putU32(b, 20, f.ttt ?? RESERVED_TAG);
  putU32(b, 28, f.expStatSN ?? 0);
  putU32(b, 40, f.begRun ?? 0);
  putU32(b, 44, f.runLength ?? 0);
  return b;
}

/** A BHS with any opcode (unknown ones included); the caller fills the rest. */
export function rawBhs(opcode: number, c: BhsCommon = {}): Buffer {
  return beginBhs(opcode, c, 0x80);
}

// ---------------------------------------------------------------------------------------------
// Target PDUs as read

export interface Pdu {
  opcode: number;
  /** The 48-byte BHS. */
  bhs: Buffer;
  ahs: Buffer;
  data: Buffer;
  flags: number;
  itt: number;
  /** Bytes 20..23 (TTT, SNACK tag...). */
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}

function decodePdu(bhs: Buffer, ahs: Buffer, data: Buffer): Pdu {
  return {
    opcode: opcodeOf(bhs, 0),
    bhs,
    ahs,
    data,
    flags: bhs[1]!,
    itt: u32(bhs, 16),
    ttt: u32(bhs, 20),
    statSN: u32(bhs, 24),
    expCmdSN: u32(bhs, 28),
    maxCmdSN: u32(bhs, 32),
  };
}

/** Login Response fields (RFC 7143 11.13). */
export function loginStatus(p: Pdu): {
  statusClass: number;
  statusDetail: number;
  tsih: number;
  transit: boolean;
  csg: number;
  nsg: number;
} {
  return {
    statusClass: p.bhs[36]!,
    statusDetail: p.bhs[37]!,
    tsih: u16(p.bhs, 14),
    transit: (p.flags & 0x80) !== 0,
    csg: (p.flags >> 2) & 3,
    nsg: p.flags & 3,
  };
}

/** Reject reason (RFC 7143 11.17.1). */
export function rejectReason(p: Pdu): number {
  return p.bhs[2]!;
}

/** Parse NUL-terminated key=value text (RFC 7143 6.1). Later keys win. */
export function parseText(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of data.toString('utf8').split('\0')) {
    if (part.length === 0) continue;
    const eq = part.indexOf('=');
    if (eq < 0) out[part] = '';
    else out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** All key=value pairs in order (repeated keys such as TargetAddress kept). */
export function parseTextPairs(data: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of data.toString('utf8').split('\0')) {
    if (part.length === 0) continue;
    const eq = part.indexOf('=');
    out.push(eq < 0 ? [part, ''] : [part.slice(0, eq), part.slice(eq + 1)]);
  }
  return out;
}

export function buildText(keys: ReadonlyArray<readonly [string, string]> | Record<string, string>): Buffer {
  const pairs = Array.isArray(keys) ? keys : Object.entries(keys);
  return Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}

// ---------------------------------------------------------------------------------------------
// The initiator

export const DEFAULT_ISID = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x00]);

export interface SendOptions {
  ahs?: Buffer;
  /** Flip a bit of the header digest (when header digests are on). */
  corruptHeaderDigest?: boolean;
  /** Flip a bit of the data digest (when data digests are on). */
  corruptDataDigest?: boolean;
  /** Override the digest settings for this PDU. */
  headerDigest?: boolean;
  dataDigest?: boolean;
  /** Keep the DataSegmentLength already in the BHS instead of the data's length. */
  keepDsl?: boolean;
}

export interface ChapCredentials {
  user: string;
  secret: string;
}

export interface LoginOptions {
  initiatorName?: string;
  targetName?: string;
  sessionType?: 'Normal' | 'Discovery';
  /** Operational keys, sent in the operational stage, in this order. */
  keys?: ReadonlyArray<readonly [string, string]> | Record<string, string>;
  /** Extra keys for the leading Login Request (e.g. InitiatorAlias). */
  leadingKeys?: ReadonlyArray<readonly [string, string]>;
  chap?: ChapCredentials;
  /**
   * Mutual CHAP (RFC 7143 12.1.3), with `chap`: challenge the target with CHAP_I/CHAP_C
   * alongside our response and check its CHAP_N/CHAP_R against these credentials. The
   * login stops (ok=false, targetAuth='failed') when the target's answer is wrong.
   */
  mutualChap?: MutualChapOptions;
  /** Skip the security stage (start in CSG=1). Not allowed by a target that needs CHAP. */
  skipSecurity?: boolean;
  /** TSIH for the login (non-zero: connection reinstatement of that session). */
  tsih?: number;
  isid?: Uint8Array;
  cmdSN?: number;
  timeoutMs?: number;
}

/** The target credentials an initiator expects, and how it challenges the target. */
export interface MutualChapOptions extends ChapCredentials {
  /** CHAP_I to send (default: random). */
  id?: number;
  /**
   * CHAP_C to send (default: 16 random bytes); 'reflect' sends back the target's own
   * CHAP_I and CHAP_C (a reflection attack, which the target must refuse).
   */
  challenge?: Buffer | 'reflect';
}

/** The outcome of a login: the final status and what both sides settled on. */
export interface LoginResult {
  ok: boolean;
  /** With `mutualChap`: whether the target proved it knows the expected secret. */
  targetAuth?: 'verified' | 'failed';
  statusClass: number;
  statusDetail: number;
  tsih: number;
  /** Every key the target sent over the whole login (last value wins). */
  targetKeys: Record<string, string>;
  /** The Login Responses received. */
  responses: Pdu[];
}

/** Negotiated values the initiator side needs to drive I/O. */
export interface Negotiated {
  headerDigest: boolean;
  dataDigest: boolean;
  /** What the target accepts per PDU (its declaration, 8192 by default). */
  targetMaxRecvDataSegmentLength: number;
  /** What we declared. */
  initiatorMaxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxOutstandingR2T: number;
}

export interface ScsiOptions {
  lun?: number;
  read?: boolean;
  write?: boolean;
  edtl: number;
  /** Write data; the bytes offered up to EDTL. */
  data?: Buffer;
  /** Send immediate data (default: when ImmediateData was negotiated). */
  immediate?: boolean;
  /** Send unsolicited Data-Out after the command (default: when InitialR2T=No). */
  unsolicited?: boolean;
  /** I bit on the command. */
  immediateDelivery?: boolean;
  attr?: number;
  /** Report a first-contact unit attention instead of retrying (Initiator.absorbFirstUnitAttention). */
  rawUnitAttention?: boolean;
  itt?: number;
  /** CmdSN to use instead of the next one (the counter still advances). */
  cmdSN?: number;
  timeoutMs?: number;
}

export interface ScsiResult {
  itt: number;
  /** iSCSI response (11.4.3): 0 completed at target. */
  response: number;
  status: number;
  sense: Buffer;
  /** Data-In payload, assembled by buffer offset. */
  data: Buffer;
  overflow: boolean;
  underflow: boolean;
  residual: number;
  r2ts: Pdu[];
  dataIns: Pdu[];
  /** The PDU that carried the status (SCSI Response or final Data-In). */
  statusPdu: Pdu;
  /** Every PDU received while the command ran. */
  pdus: Pdu[];
}

export class Initiator {
  readonly socket: net.Socket;
  /** Digest state for PDUs in both directions. */
  headerDigest = false;
  dataDigest = false;
  cmdSN = 1;
  /** TSIH the target assigned at the last successful login. */
  tsih = 0;
  expStatSN = 0;
  expCmdSN = 0;
  maxCmdSN = 0;
  private nextItt = 0x10;
  negotiated: Negotiated = {
    headerDigest: false,
    dataDigest: false,
    targetMaxRecvDataSegmentLength: 8192,
    initiatorMaxRecvDataSegmentLength: 8192,
    maxBurstLength: 262144,
    firstBurstLength: 65536,
    initialR2T: true,
    immediateData: true,
    maxOutstandingR2T: 1,
  };
  /** Answer target NOP-In pings automatically while scsi()/request flows wait. */
  autoNopReply = true;
  /**
   * On the first command this session sends to a LUN, retry while it meets a UNIT
   * ATTENTION, as real initiators do after login (libiscsi and QEMU loop on TEST UNIT
   * READY, Linux sd retries): the target reports POWER ON, RESET (29/00) on the first
   * command of every new I_T nexus and I_T NEXUS LOSS (29/07) to a returning one, plus
   * whatever was established for that I_T nexus while it was away (SAM-5 5.14, 6.3).
   * Later commands report every unit attention. Set false (or pass `rawUnitAttention`
   * to scsi()) to see them on the first command too.
   */
  absorbFirstUnitAttention = true;
  private readonly unitAttentionAbsorbed = new Set<number>();

  private rx: Buffer = Buffer.alloc(0);
  private closed = false;
  private closeError: Error | null = null;
  private waiter: (() => void) | null = null;
  private readonly closedPromise: Promise<void>;
  /** PDUs parsed but not yet consumed. */
  private readonly queue: Pdu[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.rx = this.rx.length === 0 ? d : Buffer.concat([this.rx, d]);
      this.wake();
    });
    socket.on('error', (e) => {
      this.closeError = e;
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Initiator> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, noDelay: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeListener('error', onErr);
        resolve(new Initiator(s));
      });
      const onErr = (e: Error): void => {
        clearTimeout(timer);
        reject(e);
      };
      s.once('error', onErr);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  allocItt(): number {
    const v = this.nextItt;
    this.nextItt = (this.nextItt + 1) >>> 0;
    if (this.nextItt === RESERVED_TAG) this.nextItt = 1;
    return v;
  }

  /** Next CmdSN for a non-immediate request (advances the counter). */
  takeCmdSN(): number {
    const v = this.cmdSN;
    this.cmdSN = (this.cmdSN + 1) >>> 0;
    return v;
  }

  // ---- transmit ----

  /** Raw bytes, exactly as given. */
  sendRaw(bytes: Uint8Array): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(bytes);
  }

  /**
   * Frame and send one PDU: BHS (+ AHS) (+ header digest) (+ data + padding) (+ data
   * digest). The BHS's DataSegmentLength is set from `data` unless `keepDsl`.
   */
  send(bhs: Buffer, data: Buffer = Buffer.alloc(0), o: SendOptions = {}): void {
    this.sendRaw(this.frame(bhs, data, o));
  }

  /** The bytes send() would write. */
  frame(bhs: Buffer, data: Buffer = Buffer.alloc(0), o: SendOptions = {}): Buffer {
    const hd = o.headerDigest ?? this.headerDigest;
    const dd = o.dataDigest ?? this.dataDigest;
    const h = Buffer.from(bhs);
    if (!o.keepDsl) setDsl(h, data.length);
    const ahs = o.ahs ?? Buffer.alloc(0);
    const parts: Buffer[] = [h, ahs];
    if (hd) {
      const d = Buffer.alloc(4);
      let crc = crc32c(Buffer.concat([h, ahs]));
      if (o.corruptHeaderDigest) crc = (crc ^ 1) >>> 0;
      writeDigest(d, 0, crc);
      parts.push(d);
    }
    if (data.length > 0) {
      const padded = Buffer.alloc(data.length + pad4(data.length));
      data.copy(padded);
      parts.push(padded);
      if (dd) {
        const d = Buffer.alloc(4);
        let crc = crc32c(padded);
        if (o.corruptDataDigest) crc = (crc ^ 1) >>> 0;
        writeDigest(d, 0, crc);
        parts.push(d);
      }
    }
    return Buffer.concat(parts);
  }

  // ---- receive ----

  private tryParse(): Pdu | null {
    const b = this.rx;
    if (b.length < BHS_LENGTH) return null;
    const ahs = ahsLength(b, 0);
    const hd = this.headerDigest ? 4 : 0;
    const dsl = dataSegmentLength(b, 0);
    const dd = this.dataDigest && dsl > 0 ? 4 : 0;
    const total = BHS_LENGTH + ahs + hd + dsl + pad4(dsl) + dd;
    if (b.length < total) return null;
    if (hd) {
      const got = readDigest(b, BHS_LENGTH + ahs);
      const want = crc32c(b, 0, BHS_LENGTH + ahs);
      if (got !== want) throw new Error(`target sent a bad header digest (opcode 0x${b[0]!.toString(16)})`);
    }
    const dataStart = BHS_LENGTH + ahs + hd;
    if (dd) {
      const got = readDigest(b, dataStart + dsl + pad4(dsl));
      const want = crc32c(b, dataStart, dataStart + dsl + pad4(dsl));
      if (got !== want) throw new Error(`target sent a bad data digest (opcode 0x${b[0]!.toString(16)})`);
    }
    const pdu = decodePdu(
      Buffer.from(b.subarray(0, BHS_LENGTH)),
      Buffer.from(b.subarray(BHS_LENGTH, BHS_LENGTH + ahs)),
      Buffer.from(b.subarray(dataStart, dataStart + dsl)),
    );
    this.rx = b.subarray(total);
    this.track(pdu);
    return pdu;
  }

  /** Keep the sequence numbers current (RFC 7143 4.2.2). */
  private track(p: Pdu): void {
    const carriesStatSN =
      p.opcode === Opcode.SCSI_RESPONSE ||
      (p.opcode === Opcode.DATA_IN && (p.flags & 0x01) !== 0) ||
      (p.opcode === Opcode.NOP_IN && p.itt !== RESERVED_TAG) ||
      p.opcode === Opcode.TEXT_RESPONSE ||
      p.opcode === Opcode.LOGOUT_RESPONSE ||
      p.opcode === Opcode.TASK_MGMT_RESPONSE ||
      p.opcode === Opcode.REJECT ||
      p.opcode === Opcode.LOGIN_RESPONSE ||
      p.opcode === Opcode.ASYNC_MESSAGE;
    if (carriesStatSN) this.expStatSN = (p.statSN + 1) >>> 0;
    this.expCmdSN = p.expCmdSN;
    this.maxCmdSN = p.maxCmdSN;
  }

  /** The next target PDU; rejects on timeout or when the connection closes first. */
  async nextPdu(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Pdu> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const queued = this.queue.shift();
      if (queued) return queued;
      const p = this.tryParse();
      if (p) return p;
      if (this.closed)
        throw new Error(
          `connection closed while waiting for a PDU${this.closeError ? ` (${this.closeError.message})` : ''}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no PDU within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The next PDU, or null if none arrives in time (the connection may be closed). */
  async maybePdu(timeoutMs: number): Promise<Pdu | null> {
    try {
      return await this.nextPdu(timeoutMs);
    } catch {
      return null;
    }
  }

  /** Put a PDU back at the head of the receive queue. */
  unread(p: Pdu): void {
    this.queue.unshift(p);
  }

  /**
   * Resolve when the target closes the connection; PDUs that arrive first are collected
   * and returned. Rejects if the connection is still open after timeoutMs.
   */
  async expectClose(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Pdu[]> {
    const got: Pdu[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const p = await this.nextPdu(Math.max(1, deadline - Date.now()));
        got.push(p);
      } catch (err) {
        if (this.closed) return got;
        if (Date.now() >= deadline) {
          throw new Error(`connection still open after ${timeoutMs} ms (${got.length} PDUs received)`, {
            cause: err,
          });
        }
        throw err;
      }
    }
  }

  /** Wait for the socket to be closed (without reading); true when it closed in time. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const res = await Promise.race([this.closedPromise.then(() => true), timeout]);
    clearTimeout(timer);
    return res;
  }

  /** Destroy our side. */
  close(): void {
    this.socket.destroy();
  }

  // ---- login ----

  /** Send one Login Request and read its response. */
  async loginStep(fields: LoginFields, text: Buffer, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Pdu> {
    this.send(
      loginBhs({
        itt: fields.itt ?? this.allocItt(),
        cmdSN: this.cmdSN,
        expStatSN: this.expStatSN,
        ...fields,
      }),
      text,
    );
    const p = await this.nextPdu(timeoutMs);
    if (p.opcode !== Opcode.LOGIN_RESPONSE)
      throw new Error(`expected a Login Response, got opcode 0x${p.opcode.toString(16)}`);
    return p;
  }

  /**
   * A complete login: security stage (AuthMethod=None, or one-way CHAP MD5) then the
   * operational stage with `keys`, into full feature phase. A failed login is returned
   * (ok=false with the status), not thrown.
   */
  async login(o: LoginOptions = {}): Promise<LoginResult> {
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (o.cmdSN !== undefined) this.cmdSN = o.cmdSN;
    const isid = o.isid ?? DEFAULT_ISID;
    const sessionType = o.sessionType ?? 'Normal';
    const leading: Array<[string, string]> = [
      ['InitiatorName', o.initiatorName ?? 'iqn.2026-11.io.spindle:test-initiator'],
    ];
    if (sessionType === 'Normal') leading.push(['TargetName', o.targetName ?? '']);
    leading.push(['SessionType', sessionType]);
    for (const kv of o.leadingKeys ?? []) leading.push([kv[0], kv[1]]);
    const opKeys: Array<[string, string]> = (
      Array.isArray(o.keys)
        ? [...(o.keys as ReadonlyArray<readonly [string, string]>)]
        : Object.entries(o.keys ?? {})
    ).map(([k, v]) => [k, v]);
    const itt = this.allocItt();
    const targetKeys: Record<string, string> = {};
    const responses: Pdu[] = [];
    let targetAuth: LoginResult['targetAuth'];
    const fail = (p: Pdu): LoginResult => {
      const s = loginStatus(p);
      return {
        ok: false,
        statusClass: s.statusClass,
        statusDetail: s.statusDetail,
        tsih: s.tsih,
        targetKeys,
        responses,
      };
    };
    const step = async (f: LoginFields, pairs: Array<[string, string]>): Promise<Pdu> => {
      const p = await this.loginStep({ itt, isid, tsih: o.tsih ?? 0, ...f }, buildText(pairs), timeoutMs);
      responses.push(p);
      Object.assign(targetKeys, parseText(p.data));
      return p;
    };

    let p: Pdu;
    if (!o.skipSecurity) {
      if (o.chap) {
        p = await step({ csg: 0, nsg: 1, transit: false }, [...leading, ['AuthMethod', 'CHAP,None']]);
        if (loginStatus(p).statusClass !== 0) return fail(p);
        p = await step({ csg: 0, nsg: 1, transit: false }, [['CHAP_A', '5']]);
        if (loginStatus(p).statusClass !== 0) return fail(p);
        const k = parseText(p.data);
        const id = Number(k['CHAP_I']);
        const challenge = Buffer.from((k['CHAP_C'] ?? '').replace(/^0x/i, ''), 'hex');
        const resp = chapMd5(id, o.chap.secret, challenge);
        const answer: Array<[string, string]> = [
          ['CHAP_N', o.chap.user],
          ['CHAP_R', `0x${resp.toString('hex')}`],
        ];
        // Mutual CHAP: our challenge to the target rides with our response (RFC 7143 12.1.3).
        const m = o.mutualChap;
        const reflect = m?.challenge === 'reflect';
        const myId = reflect ? id : (m?.id ?? randomInt(256));
        const myChallenge = reflect ? challenge : ((m?.challenge as Buffer | undefined) ?? randomBytes(16));
        if (m) answer.push(['CHAP_I', String(myId)], ['CHAP_C', `0x${myChallenge.toString('hex')}`]);
        p = await step({ csg: 0, nsg: 1, transit: true }, answer);
        if (m && loginStatus(p).statusClass === 0) {
          const t = parseText(p.data);
          const got = Buffer.from((t['CHAP_R'] ?? '').replace(/^0x/i, ''), 'hex');
          const expected = chapMd5(myId, m.secret, myChallenge);
          if (t['CHAP_N'] !== m.user || !got.equals(expected)) {
            return {
              ok: false,
              targetAuth: 'failed',
              statusClass: 0,
              statusDetail: 0,
              tsih: 0,
              targetKeys,
              responses,
            };
          }
          targetAuth = 'verified';
        }
      } else {
        p = await step({ csg: 0, nsg: 1, transit: true }, [...leading, ['AuthMethod', 'None']]);
      }
      if (loginStatus(p).statusClass !== 0) return fail(p);
      if (!loginStatus(p).transit) throw new Error('target did not agree to leave the security stage');
      p = await step({ csg: 1, nsg: 3, transit: true }, opKeys);
    } else {
      p = await step({ csg: 1, nsg: 3, transit: true }, [...leading, ...opKeys]);
    }
    // The target may need more rounds in the operational stage (T=0): send empty requests.
    for (
      let i = 0;
      i < 4 && loginStatus(p).statusClass === 0 && !(loginStatus(p).transit && loginStatus(p).nsg === 3);
      i++
    ) {
      p = await step({ csg: 1, nsg: 3, transit: true }, []);
    }
    const st = loginStatus(p);
    if (st.statusClass !== 0) return fail(p);
    if (!(st.transit && st.nsg === 3)) throw new Error('login did not reach full feature phase');
    this.applyNegotiation(opKeys, targetKeys);
    this.tsih = st.tsih;
    return {
      ok: true,
      ...(targetAuth === undefined ? {} : { targetAuth }),
      statusClass: 0,
      statusDetail: 0,
      tsih: st.tsih,
      targetKeys,
      responses,
    };
  }

  /** Compute the session parameters from what we offered and what the target answered. */
  private applyNegotiation(offered: Array<[string, string]>, answered: Record<string, string>): void {
    const mine = Object.fromEntries(offered);
    const val = (k: string): string | undefined => answered[k] ?? undefined;
    const num = (k: string, dflt: number): number => {
      const v = val(k);
      return v !== undefined && /^\d+$/.test(v) ? Number(v) : dflt;
    };
    const bool = (k: string, dflt: boolean): boolean => {
      const v = val(k);
      return v === 'Yes' ? true : v === 'No' ? false : dflt;
    };
    const n = this.negotiated;
    n.headerDigest = val('HeaderDigest') === 'CRC32C';
    n.dataDigest = val('DataDigest') === 'CRC32C';
    n.targetMaxRecvDataSegmentLength = num('MaxRecvDataSegmentLength', 8192);
    n.initiatorMaxRecvDataSegmentLength = mine['MaxRecvDataSegmentLength']
      ? Number(mine['MaxRecvDataSegmentLength'])
      : 8192;
    n.maxBurstLength = num('MaxBurstLength', 262144);
    n.firstBurstLength = Math.min(num('FirstBurstLength', 65536), n.maxBurstLength);
    n.initialR2T = bool('InitialR2T', true);
    n.immediateData = bool('ImmediateData', true);
    n.maxOutstandingR2T = num('MaxOutstandingR2T', 1);
    // RFC 7143 13.1: digests apply from the first PDU after the final Login Response.
    this.headerDigest = n.headerDigest;
    this.dataDigest = n.dataDigest;
  }

  // ---- full feature phase ----

  /** Read until `pred` matches; answers target NOP-In pings on the way. */
  async waitFor(pred: (p: Pdu) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS, seen: Pdu[] = []): Promise<Pdu> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.nextPdu(Math.max(1, deadline - Date.now()));
      seen.push(p);
      if (pred(p)) return p;
      if (
        this.autoNopReply &&
        p.opcode === Opcode.NOP_IN &&
        p.itt === RESERVED_TAG &&
        p.ttt !== RESERVED_TAG
      ) {
        this.send(
          nopOutBhs({
            immediate: true,
            itt: RESERVED_TAG,
            ttt: p.ttt,
            cmdSN: this.cmdSN,
            expStatSN: this.expStatSN,
            lun: p.bhs.subarray(8, 16),
          }),
        );
      }
    }
  }

  /** NOP-Out ping (ITT set) with optional data; resolves with the NOP-In. */
  async ping(
    data: Buffer = Buffer.alloc(0),
    opts: { immediate?: boolean; timeoutMs?: number; lun?: number } = {},
  ): Promise<Pdu> {
    const itt = this.allocItt();
    const immediate = opts.immediate ?? true;
    const cmdSN = immediate ? this.cmdSN : this.takeCmdSN();
    this.send(
      nopOutBhs({ immediate, itt, ttt: RESERVED_TAG, cmdSN, expStatSN: this.expStatSN, lun: opts.lun ?? 0 }),
      data,
    );
    return this.waitFor((p) => p.itt === itt, opts.timeoutMs);
  }

  /** Text Request (F=1) with keys; resolves with the Text Response. */
  async text(
    keys: Record<string, string> | ReadonlyArray<readonly [string, string]>,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<Pdu> {
    const itt = this.allocItt();
    this.send(
      textBhs({ immediate: true, itt, cmdSN: this.cmdSN, expStatSN: this.expStatSN }),
      buildText(keys),
    );
    return this.waitFor((p) => p.itt === itt, timeoutMs);
  }

  /** Logout Request; resolves with the Logout Response. */
  async logout(reason = 0, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Pdu> {
    const itt = this.allocItt();
    this.send(logoutBhs({ immediate: true, itt, reason, cmdSN: this.cmdSN, expStatSN: this.expStatSN }));
    return this.waitFor((p) => p.itt === itt, timeoutMs);
  }

  /** Task management request; resolves with the TMF Response. */
  async tmf(fields: TmfFields, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Pdu> {
    const itt = fields.itt ?? this.allocItt();
    const immediate = fields.immediate ?? true;
    const cmdSN = fields.cmdSN ?? (immediate ? this.cmdSN : this.takeCmdSN());
    this.send(tmfBhs({ expStatSN: this.expStatSN, ...fields, immediate, itt, cmdSN }));
    return this.waitFor((p) => p.itt === itt, timeoutMs);
  }

  /**
   * Run one SCSI command to completion: immediate data and unsolicited Data-Out as
   * negotiated (or as asked), Data-Out for each R2T, Data-In collected by offset.
   */
  async scsi(cdb: Uint8Array, o: ScsiOptions): Promise<ScsiResult> {
    let r = await this.scsiOnce(cdb, o);
    const lun = o.lun ?? 0;
    if (!this.absorbFirstUnitAttention || o.rawUnitAttention === true || this.unitAttentionAbsorbed.has(lun))
      return r;
    this.unitAttentionAbsorbed.add(lun);
    // The target queues at most 8 conditions per I_T nexus (ua/unit-attention.ts).
    for (let i = 0; i < 9 && isUnitAttention(r); i++)
      r = await this.scsiOnce(cdb, { ...o, cmdSN: undefined });
    return r;
  }

  private async scsiOnce(cdb: Uint8Array, o: ScsiOptions): Promise<ScsiResult> {
    const n = this.negotiated;
    const itt = o.itt ?? this.allocItt();
    const immediateDelivery = o.immediateDelivery ?? false;
    const cmdSN = o.cmdSN ?? (immediateDelivery ? this.cmdSN : this.takeCmdSN());
    if (o.cmdSN !== undefined && !immediateDelivery) this.takeCmdSN();
    const lun = o.lun ?? 0;
    const out = o.write ? (o.data ?? Buffer.alloc(o.edtl)) : Buffer.alloc(0);
    const writeLen = Math.min(out.length, o.edtl);
    const chunk = n.targetMaxRecvDataSegmentLength;
    let immLen = 0;
    if (o.write && (o.immediate ?? n.immediateData) && n.immediateData) {
      immLen = Math.min(writeLen, n.firstBurstLength, chunk);
    }
    const unsolicitedAllowed = o.write === true && !n.initialR2T && (o.unsolicited ?? true);
    const unsolicitedEnd = unsolicitedAllowed ? Math.min(writeLen, n.firstBurstLength) : immLen;
    const moreUnsolicited = unsolicitedEnd > immLen;
    this.send(
      scsiCommandBhs({
        immediate: immediateDelivery,
        final: !moreUnsolicited,
        read: o.read,
        write: o.write,
        attr: o.attr ?? 1,
        lun,
        itt,
        edtl: o.edtl,
        cmdSN,
        expStatSN: this.expStatSN,
        cdb,
      }),
      out.subarray(0, immLen),
    );
    if (moreUnsolicited) this.sendDataOut(itt, lun, RESERVED_TAG, out, immLen, unsolicitedEnd - immLen);

    const pdus: Pdu[] = [];
    const r2ts: Pdu[] = [];
    const dataIns: Pdu[] = [];
    const inbuf = Buffer.alloc(o.read ? o.edtl : 0);
    let inMax = 0;
    const deadline = Date.now() + (o.timeoutMs ?? DEFAULT_TIMEOUT_MS * 3);
    for (;;) {
      const p = await this.waitFor(
        (x) =>
          x.itt === itt &&
          (x.opcode === Opcode.R2T ||
            x.opcode === Opcode.DATA_IN ||
            x.opcode === Opcode.SCSI_RESPONSE ||
            x.opcode === Opcode.REJECT),
        Math.max(1, deadline - Date.now()),
        pdus,
      ).catch(async (err: unknown) => {
        throw new Error(
          `SCSI command 0x${cdb[0]!.toString(16)} (itt ${itt}): ${(err as Error).message}; got ${pdus.map((x) => x.opcode.toString(16)).join(',')}`,
        );
      });
      if (p.opcode === Opcode.R2T) {
        r2ts.push(p);
        const offset = u32(p.bhs, 40);
        const len = u32(p.bhs, 44);
        this.sendDataOut(itt, lun, p.ttt, out, offset, len);
        continue;
      }
      if (p.opcode === Opcode.DATA_IN) {
        dataIns.push(p);
        const offset = u32(p.bhs, 40);
        if (offset < inbuf.length)
          p.data.copy(inbuf, offset, 0, Math.min(p.data.length, inbuf.length - offset));
        inMax = Math.max(inMax, offset + p.data.length);
        if ((p.flags & 0x01) !== 0) return this.result(itt, p, inbuf.subarray(0, inMax), r2ts, dataIns, pdus);
        continue;
      }
      if (p.opcode === Opcode.REJECT)
        throw new Error(`SCSI command rejected, reason 0x${rejectReason(p).toString(16)}`);
      return this.result(itt, p, inbuf.subarray(0, inMax), r2ts, dataIns, pdus);
    }
  }

  private result(itt: number, p: Pdu, data: Buffer, r2ts: Pdu[], dataIns: Pdu[], pdus: Pdu[]): ScsiResult {
    let sense = Buffer.alloc(0);
    if (p.opcode === Opcode.SCSI_RESPONSE && p.data.length >= 2) {
      const len = u16(p.data, 0);
      sense = Buffer.from(p.data.subarray(2, 2 + len));
    }
    return {
      itt,
      response: p.opcode === Opcode.SCSI_RESPONSE ? p.bhs[2]! : 0,
      status: p.bhs[3]!,
      sense,
      data,
      overflow: (p.flags & 0x04) !== 0,
      underflow: (p.flags & 0x02) !== 0,
      residual: u32(p.bhs, 44),
      r2ts,
      dataIns,
      statusPdu: p,
      pdus,
    };
  }

  /** One sequence of Data-Out PDUs for [offset, offset+len) (DataSN from 0, F on the last). */
  sendDataOut(itt: number, lun: number, ttt: number, data: Buffer, offset: number, len: number): void {
    const chunk = this.negotiated.targetMaxRecvDataSegmentLength;
    let dataSN = 0;
    for (let at = offset; at < offset + len;) {
      const n = Math.min(chunk, offset + len - at);
      const slice = Buffer.alloc(n);
      data.copy(slice, 0, at, Math.min(data.length, at + n));
      this.send(
        dataOutBhs({
          final: at + n === offset + len,
          lun,
          itt,
          ttt,
          expStatSN: this.expStatSN,
          dataSN: dataSN++,
          bufferOffset: at,
        }),
        slice,
      );
      at += n;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CDBs

export function read10(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x28;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

export function write10(lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x2a;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

export function inquiry(alloc = 96): Buffer {
  const c = Buffer.alloc(6);
  c[0] = 0x12;
  c.writeUInt16BE(alloc, 3);
  return c;
}

export const TEST_UNIT_READY = Buffer.alloc(6);

/** CHECK CONDITION with sense key UNIT ATTENTION (fixed-format sense). */
export function isUnitAttention(r: ScsiResult): boolean {
  return r.status === 0x02 && r.sense.length >= 3 && (r.sense[2]! & 0x0f) === 0x06;
}

/** SCSI status codes (SAM-5). */
export const Status = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  BUSY: 0x08,
  TASK_SET_FULL: 0x28,
  TASK_ABORTED: 0x40,
} as const;

/** CHAP response, RFC 1994 section 4.1: MD5(identifier || secret || challenge). */
export function chapMd5(id: number, secret: string, challenge: Buffer): Buffer {
  return createHash('md5')
    .update(Buffer.of(id & 0xff))
    .update(secret, 'utf8')
    .update(challenge)
    .digest();
}

/**
 * A generator of ISIDs that differ on every call (bytes 1-2 fixed per test file, 3-5 a
 * counter), so no two sessions of a test share an I_T nexus.
 */
export function isidSequence(b1: number, b2: number): () => Buffer {
  let n = 0;
  return () => {
    n++;
    return Buffer.from([0x80, b1, b2, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  };
}

/** Connect and log in to a normal session with default keys; throws if login fails. */
export async function connectAndLogin(
  port: number,
  targetName: string,
  o: Omit<LoginOptions, 'targetName'> = {},
): Promise<Initiator> {
  const ini = await Initiator.connect(port);
  try {
    const r = await ini.login({ ...o, targetName });
    if (!r.ok) throw new Error(`login failed: class ${r.statusClass} detail ${r.statusDetail}`);
  } catch (err) {
    ini.close();
    throw err;
  }
  return ini;
}

/** A fresh initiator logs in, reads one block of LUN 0 and logs out: the target serves. */
export async function assertServes(port: number, targetName: string): Promise<void> {
  const ini = await connectAndLogin(port, targetName, {
    initiatorName: 'iqn.2026-11.io.spindle:health-check',
    keys: [['MaxRecvDataSegmentLength', '65536']],
  });
  try {
    const r = await ini.scsi(read10(0, 1), { read: true, edtl: 512 });
    if (r.status !== Status.GOOD || r.data.length !== 512)
      throw new Error(`health READ failed: status ${r.status}, ${r.data.length} bytes`);
    const lo = await ini.logout();
    if (lo.opcode !== Opcode.LOGOUT_RESPONSE || lo.bhs[2] !== 0) throw new Error('health logout failed');
  } finally {
    ini.close();
  }
}

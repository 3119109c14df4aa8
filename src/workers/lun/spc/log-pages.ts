/**
 * LOG SENSE (SPC-4 6.8) and LOG SELECT (SPC-4 6.7) for a disk.
 *
 * Log pages are a table ascending by page code and subpage; the Supported Log Pages
 * (00h/00h) and Supported Log Pages and Subpages (00h/FFh) pages, and "supported
 * subpages" (PP/FFh) are generated from it. spindle keeps no error, temperature or
 * start-stop statistics (a virtual disk has none to report), so the counters read zero
 * and the temperature reads FFh ("not available"); every parameter is the same for
 * every PAGE CONTROL value, and LOG SELECT has nothing to set: PCR = 1 (reset) succeeds
 * trivially, any log parameter in LOG SELECT parameter data is rejected, and saving
 * (SP = 1) is not supported.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength10, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from './handler.ts';
import { rejectReservedBits, rejectReservedBytes } from './unit-status.ts';

/** Log page codes (SPC-4 7.3.1 table 335, SBC-4 6.4.1). */
export const LogPage = {
  SUPPORTED_PAGES: 0x00,
  WRITE_ERROR_COUNTER: 0x02,
  READ_ERROR_COUNTER: 0x03,
  TEMPERATURE: 0x0d,
  START_STOP_CYCLE_COUNTER: 0x0e,
  INFORMATIONAL_EXCEPTIONS: 0x2f,
} as const;

const SUBPAGE_ALL = 0xff;

/** Parameter control byte (SPC-4 7.3.2.2.2 table 341): DU TSD ETC TMC FORMAT AND LINKING. */
const Control = {
  /** Bounded data counter (FL 00b). */
  COUNTER: 0x00,
  /** ASCII format list (FL 01b). */
  ASCII_LIST: 0x01,
  /** Binary format list (FL 11b). */
  BINARY_LIST: 0x03,
} as const;

/** One log parameter: code, control byte, value bytes. */
interface LogParameter {
  readonly code: number;
  readonly control: number;
  readonly value: readonly number[];
}

interface LogPageDef {
  readonly page: number;
  readonly subpage: number;
  /** Parameters, ascending by parameter code (generated pages: built by `build`). */
  readonly parameters?: readonly LogParameter[];
  readonly build?: (buf: Buffer, o: number) => number;
}

const zeros = (n: number): number[] => new Array<number>(n).fill(0);

/** Error counter parameters 0000h-0006h (SBC-4 6.4.4 table 218 / 6.4.5), 8-byte counters. */
const ERROR_COUNTERS: readonly LogParameter[] = [0, 1, 2, 3, 4, 5, 6].map((code) => ({
  code, // 0 corrected w/o delay, 1 with delay, 2 re-reads/writes, 3 total corrected,
  // 4 correction algorithm invocations, 5 bytes processed, 6 total uncorrected
  control: Control.COUNTER,
  value: zeros(8),
}));

const SPACES = (n: number): number[] => new Array<number>(n).fill(0x20);

/** Every log page, ascending by page code then subpage (SPC-4 7.3.18: ascending order). */
export const LOG_PAGES: readonly LogPageDef[] = [
  { page: LogPage.SUPPORTED_PAGES, subpage: 0x00, build: (b, o) => buildSupported(b, o, false) },
  { page: LogPage.SUPPORTED_PAGES, subpage: SUBPAGE_ALL, build: (b, o) => buildSupported(b, o, true) },
  { page: LogPage.WRITE_ERROR_COUNTER, subpage: 0, parameters: ERROR_COUNTERS },
  { page: LogPage.READ_ERROR_COUNTER, subpage: 0, parameters: ERROR_COUNTERS },
  {
    // Temperature (SPC-4 7.3.21): 0000h TEMPERATURE, 0001h REFERENCE TEMPERATURE;
    // value byte 0 reserved, byte 1 degrees Celsius, FFh = not available.
    page: LogPage.TEMPERATURE,
    subpage: 0,
    parameters: [
      { code: 0x0000, control: Control.BINARY_LIST, value: [0x00, 0xff] },
      { code: 0x0001, control: Control.BINARY_LIST, value: [0x00, 0xff] },
    ],
  },
  {
    // Start-Stop Cycle Counter (SBC-4 6.4.9 table 226): 0001h DATE OF MANUFACTURE
    // (YYYYWW ASCII, spaces: not given), 0002h ACCOUNTING DATE, 0003h SPECIFIED CYCLE
    // COUNT OVER DEVICE LIFETIME (0: no limit), 0004h ACCUMULATED START-STOP CYCLES,
    // 0005h SPECIFIED LOAD-UNLOAD COUNT OVER DEVICE LIFETIME, 0006h ACCUMULATED
    // LOAD-UNLOAD CYCLES.
    page: LogPage.START_STOP_CYCLE_COUNTER,
    subpage: 0,
    parameters: [
      { code: 0x0001, control: Control.ASCII_LIST, value: SPACES(6) },
      { code: 0x0002, control: Control.ASCII_LIST, value: SPACES(6) },
      { code: 0x0003, control: Control.BINARY_LIST, value: zeros(4) },
      { code: 0x0004, control: Control.BINARY_LIST, value: zeros(4) },
      { code: 0x0005, control: Control.BINARY_LIST, value: zeros(4) },
      { code: 0x0006, control: Control.BINARY_LIST, value: zeros(4) },
    ],
  },
  {
    // Informational Exceptions (SPC-4 7.3.8 table 356): 0000h: INFORMATIONAL EXCEPTION
    // ADDITIONAL SENSE CODE / QUALIFIER 00h/00h (none), MOST RECENT TEMPERATURE READING
    // FFh (not available).
    page: LogPage.INFORMATIONAL_EXCEPTIONS,
    subpage: 0,
    parameters: [{ code: 0x0000, control: Control.BINARY_LIST, value: [0x00, 0x00, 0xff] }],
  },
];

/** Log page header (SPC-4 7.3.2.1 table 338); `length` = bytes after byte 3. */
function pageHeader(buf: Buffer, o: number, page: number, subpage: number, length: number): void {
  buf[o] = (subpage !== 0 ? 0x40 : 0) | page; // DS 0 | SPF | PAGE CODE
  buf[o + 1] = subpage; // SUBPAGE CODE
  buf.writeUInt16BE(length, o + 2); // PAGE LENGTH
}

/** 00h/00h (page codes) or 00h/FFh (page, subpage pairs): SPC-4 7.3.18, 7.3.19. */
function buildSupported(buf: Buffer, o: number, withSubpages: boolean): number {
  let p = o + 4;
  let last = -1;
  for (const d of LOG_PAGES) {
    if (withSubpages) {
      buf[p++] = (d.subpage !== 0 ? 0x40 : 0) | d.page; // SPF | PAGE CODE
      buf[p++] = d.subpage; // SUBPAGE CODE
    } else if (d.page !== last) {
      buf[p++] = d.page; // PAGE CODE (each once)
    }
    last = d.page;
  }
  pageHeader(buf, o, LogPage.SUPPORTED_PAGES, withSubpages ? SUBPAGE_ALL : 0, p - o - 4);
  return p - o;
}

/** PP/FFh: the subpages of page PP (SPC-4 7.3.19 format, for one page code). */
function buildSubpagesOf(buf: Buffer, o: number, page: number): number {
  let p = o + 4;
  for (const d of LOG_PAGES) {
    if (d.page !== page) continue;
    buf[p++] = (d.subpage !== 0 ? 0x40 : 0) | d.page;
    buf[p++] = d.subpage;
  }
  // SPC-4 7.3.19: the page itself plus FFh.
  buf[p++] = 0x40 | page;
  buf[p++] = SUBPAGE_ALL;
  pageHeader(buf, o, page, SUBPAGE_ALL, p - o - 4);
  return p - o;
}

/** Parameters with code >= `pointer`, after the page header; returns the page length. */
function buildParameters(buf: Buffer, o: number, d: LogPageDef, pointer: number): number {
  let p = o + 4;
  for (const prm of d.parameters!) {
    if (prm.code < pointer) continue;
    buf.writeUInt16BE(prm.code, p); // 0-1: PARAMETER CODE
    buf[p + 2] = prm.control; // 2: DU TSD ETC TMC FORMAT AND LINKING
    buf[p + 3] = prm.value.length; // 3: PARAMETER LENGTH
    for (let i = 0; i < prm.value.length; i++) buf[p + 4 + i] = prm.value[i]!;
    p += 4 + prm.value.length;
  }
  pageHeader(buf, o, d.page, d.subpage, p - o - 4);
  return p - o;
}

/**
 * LOG SENSE CDB (SPC-4 6.8.1 table 155):
 *   0 4Dh | 1 reserved(7..2) obsolete(1, was PPC) SP(0) | 2 PC(7..6) PAGE CODE(5..0)
 *   3 SUBPAGE CODE | 4 reserved | 5-6 PARAMETER POINTER | 7-8 ALLOCATION LENGTH | 9 CONTROL
 */
export function logSense(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xfe) || rejectReservedBytes(cmd, 4, 5)) return Completion.DONE;
  if ((cdb[1]! & 0x01) !== 0) {
    // SP = 1: saving log parameters is not supported (SPC-4 6.8.1).
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 0));
    return Completion.DONE;
  }
  const page = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  const pointer = cdb.readUInt16BE(5);
  const buf = lu.scratch;
  let n: number;
  const def = LOG_PAGES.find((d) => d.page === page && d.subpage === subpage);
  if (def !== undefined) {
    if (def.build !== undefined) {
      n = def.build(buf, 0);
    } else {
      // SPC-4 6.8.1: a PARAMETER POINTER above the largest parameter code is invalid.
      const params = def.parameters!;
      if (pointer > params[params.length - 1]!.code) {
        setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(5, 7));
        return Completion.DONE;
      }
      n = buildParameters(buf, 0, def, pointer);
    }
  } else if (subpage === SUBPAGE_ALL && LOG_PAGES.some((d) => d.page === page)) {
    n = buildSubpagesOf(buf, 0, page);
  } else {
    const pageKnown = LOG_PAGES.some((d) => d.page === page);
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, pageKnown ? cdbField(3, 7) : cdbField(2, 5));
    return Completion.DONE;
  }
  respondData(cmd, buf, n, allocationLength10(cdb));
  return Completion.DONE;
}

/**
 * LOG SELECT CDB (SPC-4 6.7.1 table 152):
 *   0 4Ch | 1 reserved(7..2) PCR(1) SP(0) | 2 PC(7..6) PAGE CODE(5..0) | 3 SUBPAGE CODE
 *   4-6 reserved | 7-8 PARAMETER LIST LENGTH | 9 CONTROL
 */
export function logSelect(_lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xfc) || rejectReservedBytes(cmd, 4, 7)) return Completion.DONE;
  const pcr = (cdb[1]! & 0x02) !== 0;
  const paramLength = cdb.readUInt16BE(7);
  cmd.dataOutWanted = paramLength;
  if ((cdb[1]! & 0x01) !== 0) {
    // SP = 1: no saved log parameters.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 0));
    return Completion.DONE;
  }
  const page = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  if (pcr) {
    // SPC-4 6.7.1: PCR = 1 with parameter data is invalid; with none it resets every
    // resettable parameter, which here are all zero already.
    if (paramLength !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 1));
      return Completion.DONE;
    }
    return Completion.DONE;
  }
  if (paramLength === 0) {
    // PC selects which values to reset to their defaults, for the page in PAGE CODE
    // (00h: all pages): nothing to do, but the page must exist.
    if ((page !== 0 || subpage !== 0) && !LOG_PAGES.some((d) => d.page === page && d.subpage === subpage)) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 5));
      return Completion.DONE;
    }
    return Completion.DONE;
  }
  // Parameter data: the CDB's PAGE CODE and SUBPAGE CODE must be zero (SPC-4 6.7.1).
  if (page !== 0 || subpage !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(page !== 0 ? 2 : 3, page !== 0 ? 5 : 7));
    return Completion.DONE;
  }
  let len = paramLength < cmd.dataOutLength ? paramLength : cmd.dataOutLength;
  if (len > cmd.data.length) len = cmd.data.length;
  const p = cmd.data;
  for (let o = 0; o < len; ) {
    if (o + 4 > len) {
      setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
      return Completion.DONE;
    }
    const pg = p[o]! & 0x3f;
    const sp = (p[o]! & 0x40) !== 0 ? p[o + 1]! : 0;
    const def = LOG_PAGES.find((d) => d.page === pg && d.subpage === sp && d.parameters !== undefined);
    if (def === undefined) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, { cdb: false, byte: o, bit: 5 });
      return Completion.DONE;
    }
    const pageLength = p.readUInt16BE(o + 2);
    if (o + 4 + pageLength > len) {
      setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
      return Completion.DONE;
    }
    if (pageLength > 0) {
      // No parameter of spindle's log pages can be set: point at the first one.
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, { cdb: false, byte: o + 4, bit: 7 });
      return Completion.DONE;
    }
    o += 4;
  }
  return Completion.DONE;
}

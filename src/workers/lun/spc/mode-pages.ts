/**
 * Mode parameters of a disk (SPC-4 7.5, SBC-4 6.5): the page table, and per LU the
 * current and saved values. MODE SENSE (mode-sense.ts) reports from here, MODE SELECT
 * (mode-select.ts) changes it.
 *
 * Each page is held as its full byte image (page header included, PS bit clear). For
 * every page the table gives the default image, the changeable mask (a 1 bit: MODE
 * SELECT may change it) and, when a change has an effect, `apply`. What is changeable
 * (and why nothing else is):
 *
 *   01h   Read-Write Error Recovery  nothing: there is no retry/ECC policy to tune.
 *   02h   Disconnect-Reconnect       nothing: iSCSI negotiates bursts at login
 *                                    (RFC 7143 13.13/13.14), not through this page.
 *   08h   Caching                    WCE: switches the LU between write-back and
 *                                    write-through at run time. RCD stays 0: reads are
 *                                    always served through the host page cache.
 *   0Ah   Control                    SWP: software write protect (writes fail with
 *                                    DATA PROTECT; WP is reported in the header).
 *                                    TAS: 0 (default) aborted commands of other nexuses
 *                                    end without status, 1 with TASK ABORTED
 *                                    (task-management.ts).
 *                                    Not changeable, because they are what the target
 *                                    core implements: D_SENSE 0 (sense is always fixed
 *                                    format); QERR 00b (other commands continue after a
 *                                    CHECK CONDITION, SAM-5 5.8.3); TST 000b (one task
 *                                    set for all nexuses, task-set.ts); TMF_ONLY 0 (during
 *                                    ACA the faulted nexus may send an ACA command,
 *                                    task-set.ts); UA_INTLCK_CTRL 00b (ua/).
 *   0Ah/01h Control Extension        nothing (no timestamps, no priorities).
 *   1Ah   Power Condition            nothing: no power conditions (timers disabled).
 *   1Ch   Informational Exceptions   PERF EWASC DEXCPT LOGERR MRIE, INTERVAL TIMER,
 *                                    REPORT COUNT: accepted and kept; spindle has no
 *                                    failure prediction, so no exception ever fires.
 *                                    TEST is not changeable (no test exceptions).
 *   1Ch/02h Logical Block Provisioning  (thin LUs only) nothing: no thresholds.
 *   2Ah   MM Capabilities and        (CD-ROM drives only) nothing: what the drive can do
 *         Mechanical Status          and its tray lock state, reported, never set.
 *
 * Which LU has which page: the Caching and Logical Block Provisioning pages belong to
 * disks (SBC-4), the capabilities page to CD-ROM drives (MMC); the rest are SPC-4's.
 *
 * Saved values (SPC-4 7.5.1) are persisted, one JSON file per device in
 * <stateDir>/mode-pages/<device>.json, and become the current values when the LU
 * opens. Without a stateDir the LU does not implement saved values: MODE SENSE with
 * PC = 11b and MODE SELECT with SP = 1 fail with SAVING PARAMETERS NOT SUPPORTED.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LogicalUnit } from '../logical-unit.ts';
import { DeviceType } from '../device-type.ts';

/** Mode page codes this file serves (SPC-4 7.5.2 table 451, SBC-4 6.5.1 table 235). */
export const ModePageCode = {
  READ_WRITE_ERROR_RECOVERY: 0x01,
  DISCONNECT_RECONNECT: 0x02,
  CACHING: 0x08,
  CONTROL: 0x0a,
  POWER_CONDITION: 0x1a,
  INFORMATIONAL_EXCEPTIONS: 0x1c,
  MM_CAPABILITIES: 0x2a,
  ALL_PAGES: 0x3f,
} as const;

/** Subpage codes (SPC-4 7.5.2). */
export const ModeSubpage = {
  NONE: 0x00,
  CONTROL_EXTENSION: 0x01,
  LOGICAL_BLOCK_PROVISIONING: 0x02,
  ALL: 0xff,
} as const;

/**
 * A field MODE SELECT found invalid: byte offset within the page and its most
 * significant bit (for INVALID FIELD IN PARAMETER LIST, SPC-4 4.5.2.4.2).
 */
export interface PageFieldError {
  readonly byte: number;
  readonly bit: number;
}

export interface ModePageDef {
  readonly page: number;
  /** 0 for page_0 format pages, else the subpage code (sub_page format, SPF = 1). */
  readonly subpage: number;
  /** Bytes of the whole page, header included. */
  readonly length: number;
  /** Whether `lu` has this page (absent: every LU). */
  readonly present?: (lu: LogicalUnit) => boolean;
  /** Fill page[0, length) with the default values (header included). */
  readonly defaults: (lu: LogicalUnit, page: Buffer) => void;
  /** Changeable mask, per byte of the page (missing trailing bytes: 0). */
  readonly changeable: readonly number[];
  /** Extra range checks on a new image (changeable bits only); undefined when valid. */
  readonly validate?: (page: Buffer) => PageFieldError | undefined;
  /** Make a new current image take effect. */
  readonly apply?: (lu: LogicalUnit, page: Buffer) => void;
  /**
   * Bring the fields that report live state up to date in the current image before MODE
   * SENSE returns it (the CD capabilities page's LOCK STATE).
   */
  readonly refresh?: (lu: LogicalUnit, page: Buffer) => void;
}

/** page_0 header (SPC-4 7.5.7 table 453): PS 0 | SPF 0 | PAGE CODE, PAGE LENGTH. */
function header0(page: Buffer, code: number, length: number): void {
  page.fill(0, 0, length);
  page[0] = code; // PS(7) = 0 | SPF(6) = 0 | PAGE CODE(5..0)
  page[1] = length - 2; // PAGE LENGTH: bytes after this one
}

/** sub_page header (SPC-4 7.5.7 table 454): PS 0 | SPF 1 | PAGE CODE, SUBPAGE, PAGE LENGTH. */
function headerSub(page: Buffer, code: number, subpage: number, length: number): void {
  page.fill(0, 0, length);
  page[0] = 0x40 | code; // PS(7) = 0 | SPF(6) = 1 | PAGE CODE(5..0)
  page[1] = subpage; // SUBPAGE CODE
  page.writeUInt16BE(length - 4, 2); // PAGE LENGTH: bytes after byte 3
}

/** Whether the LU is thin provisioned (the SBC state owns provisioning; absent: no). */
export function isThin(lu: LogicalUnit): boolean {
  return lu.deviceType === DeviceType.DISK && lu.sbc.thin;
}

const isDisk = (lu: LogicalUnit): boolean => lu.deviceType === DeviceType.DISK;
const isCdrom = (lu: LogicalUnit): boolean => lu.deviceType === DeviceType.CDROM;

/** CD-ROM reading speed reported in the capabilities page: 40x (40 x 176.4 kB/s). */
const CD_SPEED_KBPS = 7056;

/** 2Ah byte 6: LOADING MECHANISM TYPE 001b (tray) | EJECT(3) | LOCK(0); LOCK STATE(1) is live. */
const MECHANISM_TRAY_EJECT_LOCK = 0x20 | 0x08 | 0x01;

/**
 * Every mode page, ascending by page code then subpage: the order MODE SENSE with
 * "return all pages" reports them in (SPC-4 6.11.1).
 */
export const MODE_PAGES: readonly ModePageDef[] = [
  {
    // 01h Read-Write Error Recovery (SBC-4 6.5.9 table 250), 12 bytes:
    // 2: AWRE ARRE TB RC EER PER DTE DCR; 3: READ RETRY COUNT; 4-7: obsolete/reserved;
    // 8: WRITE RETRY COUNT; 9: reserved; 10-11: RECOVERY TIME LIMIT. All zero.
    page: ModePageCode.READ_WRITE_ERROR_RECOVERY,
    subpage: 0,
    length: 12,
    defaults: (_lu, p) => header0(p, ModePageCode.READ_WRITE_ERROR_RECOVERY, 12),
    changeable: [],
  },
  {
    // 02h Disconnect-Reconnect (SPC-4 7.5.9 table 459), 16 bytes: 2 BUFFER FULL RATIO,
    // 3 BUFFER EMPTY RATIO, 4-5 BUS INACTIVITY LIMIT, 6-7 DISCONNECT TIME LIMIT, 8-9
    // CONNECT TIME LIMIT, 10-11 MAXIMUM BURST SIZE, 12 EMDP | FAIR ARBITRATION | DIMM |
    // DTDC, 13 reserved, 14-15 FIRST BURST SIZE. All zero: no limits through this page.
    page: ModePageCode.DISCONNECT_RECONNECT,
    subpage: 0,
    length: 16,
    defaults: (_lu, p) => header0(p, ModePageCode.DISCONNECT_RECONNECT, 16),
    changeable: [],
  },
  {
    // 08h Caching (SBC-4 6.5.5 table 242), 20 bytes.
    page: ModePageCode.CACHING,
    subpage: 0,
    length: 20,
    present: isDisk,
    defaults: (lu, p) => {
      header0(p, ModePageCode.CACHING, 20);
      // 2: IC ABPF CAP DISC SIZE WCE(2) MF RCD(0): WCE from the configured write cache
      //    mode; RCD 0 (reads use the cache).
      p[2] = lu.writeCacheEnabled ? 0x04 : 0x00;
      // 3: DEMAND READ / WRITE RETENTION PRIORITY 0; 4-11: pre-fetch lengths 0;
      // 12: FSW LBCSS DRA NV_DIS 0; 13: NUMBER OF CACHE SEGMENTS 0; 14-15: CACHE SEGMENT
      // SIZE 0; 16: reserved; 17-19: obsolete.
    },
    changeable: [0, 0, 0x04], // WCE
    apply: (lu, p) => {
      lu.writeCacheEnabled = (p[2]! & 0x04) !== 0;
    },
  },
  {
    // 0Ah Control (SPC-4 7.5.8 table 458), 12 bytes.
    page: ModePageCode.CONTROL,
    subpage: 0,
    length: 12,
    defaults: (_lu, p) => {
      header0(p, ModePageCode.CONTROL, 12);
      // 2: TST 000b (one task set per LU) | TMF_ONLY 0 | DPICZ 0 | D_SENSE 0 (fixed
      //    format sense) | GLTSD 1 (no implicit log parameter saving) | RLEC 0.
      p[2] = 0x02;
      // 3: QUEUE ALGORITHM MODIFIER 1h (unrestricted reordering) | NUAR 0 | QERR 00b.
      p[3] = 0x10;
      // 4: VS 0 | RAC 0 | UA_INTLCK_CTRL 00b | SWP(3) 0 | reserved.
      // 5: ATO 0 | TAS(6) 0 | ATMPE 0 | RWWP 0 | reserved | AUTOLOAD MODE 000b.
      // 6-7: obsolete; 8-9: BUSY TIMEOUT PERIOD 0 (undefined);
      // 10-11: EXTENDED SELF-TEST COMPLETION TIME 0.
    },
    changeable: [0, 0, 0, 0, 0x08, 0x40], // SWP, TAS
    apply: (lu, p) => {
      lu.softwareWriteProtect = (p[4]! & 0x08) !== 0;
      lu.taskAbortedStatus = (p[5]! & 0x40) !== 0; // SPC-4 7.5.8 TAS
    },
  },
  {
    // 0Ah/01h Control Extension (SPC-4 7.5.9 table 460), 32 bytes:
    // 4: reserved | TCMOS(2) 0 | SCSIP(1) 0 | IALUAE(0) 0; 5: INITIAL COMMAND PRIORITY 0;
    // 6: MAXIMUM SENSE DATA LENGTH 0 (no limit); 7-31: reserved.
    page: ModePageCode.CONTROL,
    subpage: ModeSubpage.CONTROL_EXTENSION,
    length: 32,
    defaults: (_lu, p) => headerSub(p, ModePageCode.CONTROL, ModeSubpage.CONTROL_EXTENSION, 32),
    changeable: [],
  },
  {
    // 1Ah Power Condition (SPC-4 7.5.13 table 466), 40 bytes: 2 PM_BG_PRECEDENCE |
    // STANDBY_Y; 3 IDLE_C IDLE_B IDLE_A STANDBY_Z; 4-23 the five condition timers;
    // 24-38 reserved; 39 CCF IDLE / STANDBY / STOPPED. All zero: timers disabled.
    page: ModePageCode.POWER_CONDITION,
    subpage: 0,
    length: 40,
    defaults: (_lu, p) => header0(p, ModePageCode.POWER_CONDITION, 40),
    changeable: [],
  },
  {
    // 1Ch Informational Exceptions Control (SPC-4 7.5.11 table 463), 12 bytes.
    page: ModePageCode.INFORMATIONAL_EXCEPTIONS,
    subpage: 0,
    length: 12,
    defaults: (_lu, p) => {
      header0(p, ModePageCode.INFORMATIONAL_EXCEPTIONS, 12);
      // 2: PERF 0 | reserved | EBF 0 | EWASC 0 | DEXCPT(3) 1: disabled | TEST 0 |
      //    EBACKERR 0 | LOGERR 0.
      p[2] = 0x08;
      // 3: reserved | MRIE 0h (no reporting); 4-7: INTERVAL TIMER 0; 8-11: REPORT COUNT 0.
    },
    // 2: PERF EWASC DEXCPT LOGERR; 3: MRIE; 4-11: INTERVAL TIMER, REPORT COUNT.
    changeable: [0, 0, 0x99, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    validate: (p) => {
      // MRIE (SPC-4 table 464): 0h-6h defined, 7h-Bh reserved, Ch-Fh vendor specific.
      const mrie = p[3]! & 0x0f;
      return mrie > 6 ? { byte: 3, bit: 3 } : undefined;
    },
  },
  {
    // 1Ch/02h Logical Block Provisioning (SBC-4 6.5.8 table 248), thin LUs: 4 reserved |
    // SITUA(0) 0; 5-15 reserved; no threshold descriptors (VPD B2h THRESHOLD EXPONENT 0).
    page: ModePageCode.INFORMATIONAL_EXCEPTIONS,
    subpage: ModeSubpage.LOGICAL_BLOCK_PROVISIONING,
    length: 16,
    present: isThin,
    defaults: (_lu, p) =>
      headerSub(p, ModePageCode.INFORMATIONAL_EXCEPTIONS, ModeSubpage.LOGICAL_BLOCK_PROVISIONING, 16),
    changeable: [],
  },
  {
    // 2Ah MM Capabilities and Mechanical Status (MMC-3 6.3.11; kept by MMC-6 drives and
    // read by Linux's sr driver for the drive's capabilities), 32 bytes. Read-only.
    page: ModePageCode.MM_CAPABILITIES,
    subpage: 0,
    length: 32,
    present: isCdrom,
    defaults: (_lu, p) => {
      header0(p, ModePageCode.MM_CAPABILITIES, 32);
      // 2: read capabilities: DVD-RAM/-R/-ROM READ, METHOD 2, CD-RW READ, CD-R READ: 0
      //    (a CD-ROM reader; pressed CD-ROM reading is implied).
      // 3: write capabilities: none.
      // 4: BUF | MULTI-SESSION | MODE 2 FORM 2 | MODE 2 FORM 1 | DIGITAL PORTS | COMPOSITE
      //    | AUDIO PLAY: 0 (a data disc image has no audio).
      // 5: CD-DA and sub-channel capabilities: 0.
      p[6] = MECHANISM_TRAY_EJECT_LOCK; // 6: see MECHANISM_TRAY_EJECT_LOCK; PREVENT JUMPER 0
      // 7: changer and volume bits: 0.
      p.writeUInt16BE(CD_SPEED_KBPS, 8); // 8-9: MAXIMUM READ SPEED (obsolete, still read)
      // 10-11: NUMBER OF VOLUME LEVELS 0; 12-13: BUFFER SIZE 0.
      p.writeUInt16BE(CD_SPEED_KBPS, 14); // 14-15: CURRENT READ SPEED (obsolete)
      // 16-31: write speeds, copy management revision, rotation control, write speed
      // descriptors: 0 (nothing is written).
    },
    changeable: [],
    refresh: (lu, p) => {
      // 6 bit 1: LOCK STATE, the medium is locked in (PREVENT ALLOW MEDIUM REMOVAL).
      p[6] = MECHANISM_TRAY_EJECT_LOCK | (lu.sbc.preventing.size > 0 ? 0x02 : 0x00);
    },
  },
];

/** Per-LU mode parameter state, index-aligned with MODE_PAGES. */
export class ModeState {
  /** Default images (SPC-4 7.5.1: the values at manufacture / configuration). */
  readonly defaults: (Buffer | null)[];
  /** Current images; null for pages the LU does not have. */
  readonly current: (Buffer | null)[];
  /** Saved images; null: never saved (saved values then read as the defaults). */
  readonly saved: (Buffer | null)[];
  /** Changeable masks expanded to full page length. */
  readonly changeable: (Buffer | null)[];
  /** Where saved pages persist; null: saved values not implemented. */
  readonly file: string | null;
  /** Serialises saves of this LU so the file always holds the latest. */
  saving: Promise<void> = Promise.resolve();

  constructor(lu: LogicalUnit, stateDir: string | undefined) {
    this.file = stateDir === undefined ? null : path.join(stateDir, 'mode-pages', `${lu.name}.json`);
    this.defaults = [];
    this.current = [];
    this.saved = [];
    this.changeable = [];
    for (const def of MODE_PAGES) {
      if (def.present !== undefined && !def.present(lu)) {
        this.defaults.push(null);
        this.current.push(null);
        this.saved.push(null);
        this.changeable.push(null);
        continue;
      }
      const d = Buffer.alloc(def.length);
      def.defaults(lu, d);
      const mask = Buffer.alloc(def.length);
      for (let i = 0; i < def.changeable.length; i++) mask[i] = def.changeable[i]!;
      this.defaults.push(d);
      this.current.push(Buffer.from(d));
      this.saved.push(null);
      this.changeable.push(mask);
    }
  }

  /** Whether saved values are implemented (a state directory is configured). */
  get savable(): boolean {
    return this.file !== null;
  }
}

/** Index in MODE_PAGES of (page, subpage) when `lu` has it, else -1. */
export function findModePage(state: ModeState, page: number, subpage: number): number {
  for (let i = 0; i < MODE_PAGES.length; i++) {
    const d = MODE_PAGES[i]!;
    if (d.page === page && d.subpage === subpage) return state.current[i] === null ? -1 : i;
  }
  return -1;
}

/** JSON stored per device: page key "PP" or "PP.SS" (hex) → page image (hex). */
interface SavedFile {
  readonly version: 1;
  readonly device: string;
  readonly pages: Record<string, string>;
}

function pageKey(def: ModePageDef): string {
  const p = def.page.toString(16).padStart(2, '0');
  return def.subpage === 0 ? p : `${p}.${def.subpage.toString(16).padStart(2, '0')}`;
}

/**
 * Create the LU's mode state and load its saved pages: SPC-4 7.5.1, saved values become
 * the current values when the LU starts. A saved image that no longer fits (length, or
 * bits outside today's changeable mask differ from today's defaults, e.g. after a
 * configuration change) is ignored: the defaults win.
 */
export async function openModeState(lu: LogicalUnit, stateDir: string | undefined): Promise<ModeState> {
  const state = new ModeState(lu, stateDir);
  if (state.file === null) return state;
  let parsed: SavedFile;
  try {
    parsed = JSON.parse(await readFile(state.file, 'utf8')) as SavedFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return state;
    if (err instanceof SyntaxError) return state; // a torn or foreign file: defaults
    throw err;
  }
  const pages = parsed?.pages ?? {};
  for (let i = 0; i < MODE_PAGES.length; i++) {
    const def = MODE_PAGES[i]!;
    const d = state.defaults[i];
    const hex = pages[pageKey(def)];
    if (d == null || typeof hex !== 'string') continue;
    const img = Buffer.from(hex, 'hex');
    if (img.length !== def.length || !onlyChangeableDiffer(d, img, state.changeable[i]!)) continue;
    if (def.validate?.(img) !== undefined) continue;
    state.saved[i] = img;
    state.current[i] = Buffer.from(img);
    def.apply?.(lu, img);
  }
  return state;
}

/** True when `img` differs from `base` only in bits set in `mask` (headers must match). */
function onlyChangeableDiffer(base: Buffer, img: Buffer, mask: Buffer): boolean {
  for (let i = 0; i < base.length; i++) if (((base[i]! ^ img[i]!) & ~mask[i]!) !== 0) return false;
  return true;
}

/**
 * Persist the saved pages of `lu` (write a temporary file, then rename over the old one
 * so a crash leaves either version whole). Resolves when the file is in place.
 */
export function persistSavedPages(lu: LogicalUnit): Promise<void> {
  const state = lu.modes;
  const file = state.file;
  if (file === null) return Promise.resolve();
  const pages: Record<string, string> = {};
  for (let i = 0; i < MODE_PAGES.length; i++) {
    const s = state.saved[i];
    if (s != null) pages[pageKey(MODE_PAGES[i]!)] = s.toString('hex');
  }
  const body: SavedFile = { version: 1, device: lu.name, pages };
  const text = `${JSON.stringify(body, null, 2)}\n`;
  const next = state.saving.then(async () => {
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, file);
  });
  // A failed save must not wedge later ones.
  state.saving = next.catch(() => undefined);
  return next;
}

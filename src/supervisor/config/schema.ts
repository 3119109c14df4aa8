/**
 * The configuration schema: one row per key of the YAML file, and the single source of truth
 * for it. Each row says what the key accepts, its default, what it means (the README text,
 * rendered by docs.ts between marker comments) and whether a reload (SIGHUP) may change it
 * (reload.ts reads that through {@link RELOAD_POLICY}). The output type is derived from the
 * rows and checked against the shapes in src/shared/config-types.ts at compile time (end of
 * this file), so a row and a type cannot drift apart.
 *
 * Rules that relate several keys (sizes vs block size, LUNs vs devices, FirstBurstLength vs
 * MaxBurstLength, CHAP secrets, ACL patterns, ALUA states vs portals) sit with the section
 * they belong to. Every problem is reported at once, with its path; load.ts adds the line.
 *
 * Relative paths (stateDir, file backing paths) are resolved against the process working
 * directory at load time, so workers and logs only ever see absolute paths.
 *
 * Adding a key is adding a row; a new section (e.g. `cluster`) is a `section({...})` row at
 * the top, with `table` set if it gets a README table of its own; a new device kind is a row
 * with `variant: 'backing'` beside `ram`, `file`, `block`, `null` and `cdrom` (and its member in BackingConfig).
 */

import { readFileSync } from 'node:fs';
import type {
  AclEntry,
  ApiConfig,
  ChapCredentials,
  DeviceConfig,
  PortalAluaState,
  PortalConfig,
  SpindleConfig,
  TargetConfig,
} from '../../shared/config-types.ts';
import { ALUA_STATE_NAMES } from '../../shared/config-types.ts';
import type { ClusterConfig, ClusterNodeConfig, ClusterRedisConfig } from '../../shared/cluster-config.ts';
import { describe, formatPath, type Path, type RawIssue } from './issues.ts';
import { initiatorPatternProblem, iscsiNameProblem, MAX_ISCSI_NAME_BYTES } from './iscsi-names.ts';
import { displayPortal, parsePortal, portalKey } from './portals.ts';
import { nodePortGroup, portalPortId } from '../cluster/ids.ts';
import {
  absent,
  type Ctx,
  type Node,
  defaultEnv,
  field,
  fixedKeys,
  isObj,
  list,
  Reload,
  reloadPolicy,
  scopeKey,
  section,
  type ConfigEnv,
  type Infer,
  type ListOptions,
  type RuleContext,
  type SectionRule,
  validate,
} from './rows.ts';
import {
  asciiField,
  bool,
  byteLength,
  bytes,
  fsPath,
  identifier,
  int,
  isIdentifier,
  label,
  leaf,
  oneOf,
  problem,
  seconds,
  simple,
  size,
  text,
} from './values.ts';

// Compatibility: these lived here before the schema was split up; callers import them from here.
export { ConfigError, ConfigErrorCode, formatIssues, formatPath } from './issues.ts';
export type { ConfigIssue, PathSegment, RawIssue } from './issues.ts';
export { initiatorPatternProblem, iscsiNameProblem } from './iscsi-names.ts';
export { displayPortal, parsePortal, portalKey } from './portals.ts';
export { defaultEnv, type ConfigEnv } from './rows.ts';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LIMITS = {
  maxWorkers: 64,
  maxLun: 16383,
  /** RFC 7143 section 4.2.7.1: an iSCSI name is at most 223 bytes. */
  maxIscsiNameBytes: MAX_ISCSI_NAME_BYTES,
  /** RFC 7143 section 12.1.3: CHAP secrets shorter than 12 bytes must be refused. */
  minChapSecretBytes: 12,
  maxChapSecretBytes: 255,
  /** RFC 7143 MaxRecvDataSegmentLength / MaxBurstLength / FirstBurstLength range. */
  minSegment: 512,
  maxSegment: 16777215,
} as const;

const { live, restart, grow } = Reload;

// ---------------------------------------------------------------------------------------------
// What earlier parts of the file tell later rules (rows are parsed in order)

/** Names of every device entry with a well-formed name, valid or not: a target referring to a
 *  device that has some other mistake gets no misleading "unknown device" issue. */
const DEVICE_NAMES = scopeKey('device names', () => new Set<string>());
/** portalKey() of every portal a target lists. */
const TARGET_PORTALS = scopeKey('target portals', () => new Set<string>());
/** Every CHAP secret seen, for the cross-direction reuse check. */
const CHAP_SECRETS = scopeKey('CHAP secrets', () => [] as ChapSecretUse[]);

/** Where a CHAP secret is configured, and which side it authenticates. */
interface ChapSecretUse {
  readonly at: Path;
  readonly secret: string;
  /** `chap` authenticates initiators; `mutualChap` authenticates the target. */
  readonly role: 'initiator' | 'target';
}

// ---------------------------------------------------------------------------------------------
// Values particular to spindle

const iscsiName = text('iSCSI name (`iqn.`, `eui.` or `naa.` form, at most 223 bytes)', iscsiNameProblem);

const initiatorPattern = text('iSCSI name, or pattern with `*`', initiatorPatternProblem);

/** One "host:port"; every portal a target lists is remembered for `aluaStates`. */
const portal = leaf<PortalConfig>('`"host:port"`', (raw, at, ctx) => {
  if (typeof raw !== 'string') {
    ctx.report(at, `portal must be a string "host:port", got ${describe(raw)}`);
    return undefined;
  }
  const p = parsePortal(raw);
  if (typeof p === 'string') {
    ctx.report(at, p);
    return undefined;
  }
  ctx.scoped(TARGET_PORTALS).add(portalKey(p));
  return p;
});

const PORTAL_REQUIRED = 'at least one portal is required, e.g. ["127.0.0.1:3260"]';
const LUN_REQUIRED = 'at least one LUN is required, e.g. { 0: ram0 }';

/** A LUN map `{ <lun>: <device> }` (targets[].luns, targets[].acls[].luns). */
function lunMap(owner: 'target' | 'ACL entry') {
  return leaf<Readonly<Record<number, string>>>(
    `map of LUN (0-${LIMITS.maxLun}) to device name`,
    (raw, lat, ctx) => {
      if (!isObj(raw)) {
        ctx.report(
          lat,
          `must be a mapping of LUN number to device name, e.g. { 0: ram0 }, got ${describe(raw)}`,
        );
        return undefined;
      }
      if (Object.keys(raw).length === 0) {
        ctx.report(lat, LUN_REQUIRED);
        return undefined;
      }
      const deviceNames = ctx.scoped(DEVICE_NAMES);
      const before = ctx.issueCount;
      const luns: Record<number, string> = {};
      const usedBy = new Map<string, number>();
      for (const [key, dev] of Object.entries(raw)) {
        const kat = [...lat, key];
        const lun = /^\d{1,5}$/.test(key) ? Number(key) : NaN;
        if (!(lun >= 0 && lun <= LIMITS.maxLun)) {
          ctx.report(kat, `LUN number must be an integer 0-${LIMITS.maxLun}, got ${JSON.stringify(key)}`);
          continue;
        }
        if (typeof dev !== 'string') {
          ctx.report(kat, `must be the name of a device, got ${describe(dev)}`);
          continue;
        }
        if (!deviceNames.has(dev)) {
          const known = [...deviceNames].join(', ') || 'none';
          ctx.report(kat, `unknown device "${dev}" (devices: ${known})`);
          continue;
        }
        const other = usedBy.get(dev);
        if (other !== undefined) {
          ctx.report(kat, `device "${dev}" is already LUN ${other} of this ${owner}`);
          continue;
        }
        usedBy.set(dev, lun);
        luns[lun] = dev;
      }
      return ctx.issueCount === before ? luns : undefined;
    },
  );
}

const chapSecret = simple<string>(
  `${LIMITS.minChapSecretBytes}-${LIMITS.maxChapSecretBytes} bytes (quote it)`,
  (raw) => {
    // Never echo the value: it is a secret.
    if (typeof raw !== 'string')
      return problem(`CHAP secret must be a string (quote it), got a ${typeof raw}`);
    const n = byteLength(raw);
    if (n < LIMITS.minChapSecretBytes) {
      return problem(
        `CHAP secret is ${n} bytes; RFC 7143 section 12.1.3 requires at least ${LIMITS.minChapSecretBytes} (12-16 recommended)`,
      );
    }
    if (n > LIMITS.maxChapSecretBytes) {
      return problem(`CHAP secret is ${n} bytes; at most ${LIMITS.maxChapSecretBytes} are allowed`);
    }
    return raw;
  },
);

/**
 * `aluaStates: { "host:port": state }`: the asymmetric access state of each portal's
 * target port group (SPC-4 5.16.2.4). Every key must be a portal some target listens on.
 */
const aluaStatesMap = leaf<readonly PortalAluaState[]>(
  `map of \`"host:port"\` to ${ALUA_STATE_NAMES.map((s) => `\`${s}\``).join(', ')}`,
  (raw, at, ctx) => {
    if (!isObj(raw)) {
      ctx.report(
        at,
        `must be a mapping of "host:port" to a state (${ALUA_STATE_NAMES.join(', ')}), got ${describe(raw)}`,
      );
      return undefined;
    }
    const before = ctx.issueCount;
    const known = ctx.scoped(TARGET_PORTALS);
    const state = oneOf(ALUA_STATE_NAMES);
    const out: PortalAluaState[] = [];
    const seen = new Map<string, string>();
    for (const [key, value] of Object.entries(raw)) {
      const kat = [...at, key];
      const p = parsePortal(key);
      if (typeof p === 'string') {
        ctx.report(kat, p);
        continue;
      }
      const pk = portalKey(p);
      if (!known.has(pk)) {
        ctx.report(
          kat,
          `no target listens on ${displayPortal(p)}: an ALUA state needs one of the targets' portals`,
        );
        continue;
      }
      const first = seen.get(pk);
      if (first !== undefined) {
        ctx.report(kat, `duplicate portal (same as "${first}")`);
        continue;
      }
      seen.set(pk, key);
      const s = state.parse(value, kat, ctx);
      if (s !== undefined) out.push({ portal: p, state: s });
    }
    return ctx.issueCount === before ? out : undefined;
  },
);

// ---------------------------------------------------------------------------------------------
// Sections

const clampWorkers = (cores: number): number => Math.min(LIMITS.maxWorkers, Math.max(1, Math.floor(cores)));

export const workersSection = section({
  session: field(int(1, LIMITS.maxWorkers), {
    default: ({ env }) => clampWorkers(env.cores),
    docDefault: 'cores (at most 64)',
    doc: 'session workers: iSCSI connections, login, PDUs, R2T',
  }),
  lun: field(int(1, LIMITS.maxWorkers), {
    default: ({ env }) => clampWorkers(env.cores),
    docDefault: 'cores (at most 64)',
    doc: 'LUN workers: SCSI emulation and backing I/O; never more than there are devices (devices are placed round-robin)',
  }),
});

export const loggingSection = section({
  level: field(oneOf(LOG_LEVELS), { default: 'info', doc: 'log level (`--log-level` overrides it)' }),
});

const RFC_13 = ' (RFC 7143 section 13)';
const segment = () => bytes({ min: LIMITS.minSegment, max: LIMITS.maxSegment, note: RFC_13 });

/** FirstBurstLength may not exceed MaxBurstLength (RFC 7143 13.14). */
const firstBurstWithinMaxBurst: SectionRule<typeof iscsiFields> = (v, r) => {
  if (!r.given('firstBurstLength') || v.firstBurstLength === undefined || v.maxBurstLength === undefined)
    return;
  if (v.firstBurstLength > v.maxBurstLength) {
    r.report(
      ['firstBurstLength'],
      `must not exceed maxBurstLength (${v.maxBurstLength}) (RFC 7143 section 13.14), got ${v.firstBurstLength}`,
    );
  }
};

const iscsiFields = {
  maxRecvDataSegmentLength: field(segment(), {
    default: 262144,
    doc: 'largest data segment the target accepts per PDU (RFC 7143 13.12)',
  }),
  maxBurstLength: field(segment(), {
    default: 1048576,
    doc: 'upper bound the target answers for MaxBurstLength (13.13)',
  }),
  firstBurstLength: field(segment(), {
    // The default shrinks with a smaller maxBurstLength, which it may not exceed.
    default: ({ siblings }) =>
      Math.min(262144, typeof siblings['maxBurstLength'] === 'number' ? siblings['maxBurstLength'] : 1048576),
    docDefault: '`262144`',
    doc: 'upper bound the target answers for FirstBurstLength (13.14); at most `maxBurstLength`, and the default shrinks with a smaller `maxBurstLength`',
  }),
  maxOutstandingR2T: field(int(1, 65535), {
    default: 1,
    doc: 'upper bound for MaxOutstandingR2T, R2Ts in flight per task (13.17)',
  }),
  maxTransferLength: field(bytes({ min: 4096, max: 2 ** 30, multipleOf: 4096 }), {
    // A whole number of blocks for either block size, as the Block Limits VPD reports it in blocks.
    default: '32MiB',
    doc: 'largest data transfer of one command; reported in VPD 0xB0; sizes the per-worker data slab',
  }),
  immediateData: field(bool(), {
    default: true,
    doc: "the target's ImmediateData value (13.11, AND with the initiator's)",
  }),
  initialR2T: field(bool(), {
    default: false,
    doc: "the target's InitialR2T value (13.10, OR with the initiator's); `true` forbids unsolicited Data-Out",
  }),
  dataPDUInOrder: field(bool(), {
    default: false,
    doc: "the target's DataPDUInOrder value (13.18, OR with the initiator's). `false`: the initiator's offer decides, and with No the Data-Out PDUs of a sequence may arrive in any order; `true` insists on increasing offsets",
  }),
  dataSequenceInOrder: field(bool(), {
    default: false,
    doc: "the target's DataSequenceInOrder value (13.19, OR with the initiator's). `false`: with the initiator's No, the data sequences of a write (the unsolicited burst, each R2T's burst) may arrive in any order; `true` insists on increasing offsets",
  }),
  maxConnectionsPerPortal: field(int(1, 65535), { default: 256, doc: 'connections refused beyond this' }),
  loginTimeoutSec: field(int(1, 3600), { default: 15, doc: 'a connection must finish login within this' }),
  nopIntervalSec: field(int(0, 3600), {
    // Target NOP-In pings (RFC 7143 11.19).
    default: 30,
    doc: 'seconds between target NOP-In pings on a full-feature connection; `0` disables pings',
  }),
  nopTimeoutSec: field(int(1, 3600), {
    default: 15,
    doc: 'a ping not answered within this drops the connection',
  }),
  maxSessionsPerTarget: field(int(1, 65535), {
    default: 256,
    doc: 'normal sessions per target on this node, across all session workers; further logins fail with Out of resources (status 0302h)',
  }),
  authBackoffMaxSec: field(int(0, 3600), {
    // auth-throttle.ts
    default: 30,
    doc: 'failed authentications of one (initiator name, IP address) are answered after 0.5 s, 1 s, 2 s, ... up to this, node-wide; a success forgets the key, each failure-free minute takes one step off; `0` disables the backoff',
  }),
  maxPendingWriteBytes: field(bytes({ min: 4096, max: 2 ** 40 }), {
    default: '64MiB',
    doc: 'slab memory one session\'s writes may hold while their data is still due (announced, not yet sent); further writes get TASK SET FULL until data arrives, so an initiator withholding write data cannot starve the other sessions of its session worker. At least `maxTransferLength`',
  }),
  dataOutTimeoutSec: field(int(0, 3600), {
    default: 30,
    doc: 'a write whose next Data-Out does not arrive within this ends with CHECK CONDITION, ABORTED COMMAND, INITIATOR RESPONSE TIMEOUT (0B/4B/06) and frees its buffer (NOP-In pings do not keep it alive); `0` never',
  }),
  maxConnectionsPerAddress: field(int(1, 65535), {
    default: 64,
    doc: 'connections one initiator IP address may hold at one portal; more are refused at accept',
  }),
};

/** A session must be able to hold at least one largest write. */
const pendingWritesFitOneTransfer: SectionRule<typeof iscsiFields> = (v, r) => {
  if (v.maxPendingWriteBytes === undefined || v.maxTransferLength === undefined) return;
  if (v.maxPendingWriteBytes < v.maxTransferLength)
    r.report(['maxPendingWriteBytes'], `must be at least maxTransferLength (${v.maxTransferLength})`);
};

export const iscsiSection = section(iscsiFields, { table: 'iscsi', rules: [firstBurstWithinMaxBurst, pendingWritesFitOneTransfer] });

// ---- devices[] ----

export const ramBacking = section({
  size: field(size(), {
    required: 'size is required, e.g. 1GiB',
    reload: grow,
    doc: 'capacity, a multiple of `blockSize`',
  }),
});

export const fileBacking = section({
  path: field(fsPath('file'), {
    required: 'path of the backing file is required',
    reload: restart,
    doc: 'the backing file',
  }),
  size: field(size(), {
    required: 'size is required: the file is created or extended to this size',
    reload: grow,
    doc: 'capacity, a multiple of `blockSize`; the file is created or extended (sparsely) to it',
  }),
});

export const blockBacking = section({
  path: field(fsPath('file'), {
    required: 'path of the block device is required, e.g. /dev/disk/by-id/...',
    reload: restart,
    doc: 'the block device node (symlinks such as `/dev/disk/by-id/...` are followed)',
  }),
  size: field(size(), {
    docDefault: 'the device\'s size',
    reload: grow,
    doc: 'capacity exported; read from the device when absent. Larger than the device: refused at start. Smaller: refused unless `prefix` is set',
  }),
  prefix: field(bool(), {
    docDefault: '`false`',
    reload: restart,
    doc: '`true`: a `size` smaller than the device exports only the device\'s first `size` bytes (asked for explicitly, so a unit typo cannot silently hide most of a disk)',
  }),
});

export const nullBacking = section({
  size: field(size(), {
    required: 'size is required, e.g. 1GiB',
    reload: grow,
    doc: 'capacity, a multiple of `blockSize`',
  }),
});

export const cdromBacking = section({
  path: field(fsPath('file'), {
    docDefault: 'none (no disc)',
    // A different image is a medium change (NOT READY, then NOT READY TO READY CHANGE).
    reload: live,
    doc: 'the ISO image in the drive (read-only, its size is the file\'s); absent: an empty drive. Changing it on reload changes the disc: NOT READY while it is swapped, then UNIT ATTENTION 28/00 (refused while an initiator prevents medium removal)',
  }),
});

/** physicalBlockSize values: powers of two, 512 B to 64 KiB. */
const PHYSICAL_BLOCK_SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] as const;

export const deviceFields = {
  name: field(identifier(64), {
    required: 'device name is required',
    doc: 'unique; another name is another device (removed and added on reload)',
  }),
  ram: field(ramBacking, { variant: 'backing', doc: 'RAM-backed device (contents are lost at exit)' }),
  file: field(fileBacking, { variant: 'backing', doc: 'file-backed device (a regular file; a block device path is refused: use `block`)' }),
  block: field(blockBacking, {
    variant: 'backing',
    doc: 'block device (a disk, partition, LVM/dm volume, DRBD, mapped RBD, SAN LUN...): size, logical and physical block size, rotation and discard come from the device; direct I/O by default',
  }),
  null: field(nullBacking, {
    variant: 'backing',
    doc: 'no medium: reads return zeros, writes are dropped; measures the protocol path (`npm run bench`). Write it `null:` or `"null":`',
  }),
  cdrom: field(cdromBacking, {
    variant: 'backing',
    doc: 'CD-ROM drive (peripheral device type 05h, MMC-6) holding an ISO image: 2048-byte blocks, read-only, removable',
  }),
  blockSize: field(oneOf([512, 2048, 4096] as const), {
    default: (c) => (isObj(c.mapping['cdrom']) || c.mapping['cdrom'] === null ? 2048 : 512),
    docDefault: '`512`; `2048` for `cdrom`',
    reload: restart,
    doc: 'logical block size; the size must be a multiple. `2048` for `cdrom` and only there; a block device\'s must equal the device\'s logical block size',
  }),
  physicalBlockSize: field(oneOf(PHYSICAL_BLOCK_SIZES), {
    docDefault: '`blockSize`',
    reload: restart,
    // Reported as LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (SBC-4 5.21.2): a power of two from
    // the logical block size up to 2^15 logical blocks (4 bits).
    doc: 'at least `blockSize`; reported as the logical-blocks-per-physical-block exponent in READ CAPACITY(16) and the optimal transfer granularity in VPD 0xB0',
  }),
  readOnly: field(bool(), {
    default: false,
    reload: restart,
    doc: 'writes fail with DATA PROTECT / WRITE PROTECTED; MODE SENSE reports WP',
  }),
  thin: field(bool(), {
    // Logical block provisioning (SBC-4 4.7). Absent: fully provisioned, except a block
    // device that can deallocate (the LUN worker decides: it sees the device).
    docDefault: '`false`; block devices: `true` when the device can discard',
    reload: restart,
    doc: 'thin provisioning: UNMAP, WRITE SAME with UNMAP, GET LBA STATUS, SANITIZE BLOCK ERASE / CRYPTOGRAPHIC ERASE; LBPME and LBPRZ in READ CAPACITY(16), LBPU/LBPWS/LBPWS10 in VPD 0xB2. Deallocated blocks read as zeros. RAM and file devices write zeros (Node has no hole punching) and keep an allocation map (a file device in `<path>.map` across clean restarts, "all mapped" after a crash). A block device really deallocates (`fallocate --punch-hole` on the device: discard with zeroing) and keeps no map (GET LBA STATUS reports mapped, no BLOCK ERASE); `true` on a device without discard is refused at start',
  }),
  removable: field(bool(), {
    // Removable medium (SPC-4 6.6.2 RMB). Omitted when false.
    default: false,
    omitWhenDefault: true,
    reload: restart,
    doc: 'removable medium: RMB in INQUIRY; START STOP UNIT with LOEJ ejects/loads; PREVENT ALLOW MEDIUM REMOVAL locks it (ILLEGAL REQUEST / MEDIUM REMOVAL PREVENTED); without medium, media commands fail with NOT READY / MEDIUM NOT PRESENT. A `cdrom` is always removable',
  }),
  writeCache: field(oneOf(['writethrough', 'writeback'] as const), {
    default: 'writeback',
    reload: restart,
    doc: '`writethrough` makes every write durable before its status; `writeback` relies on SYNCHRONIZE CACHE and FUA (both honoured). WCE in the caching mode page reflects it and MODE SELECT may change it',
  }),
  direct: field(bool(), {
    docDefault: '`true` for `block` and in a cluster, `false` otherwise',
    reload: restart,
    doc: 'file, block and cdrom devices: O_DIRECT I/O, bypassing this host\'s page cache, so no node serves a stale read of storage other nodes write (a shared block device, a cluster file system), and a large device does not crowd out the page cache. Required in a cluster; reads and writes go straight to the medium, so `writeback` then only defers the device\'s own cache. A file system without O_DIRECT (tmpfs before Linux 6.6) is refused at start',
  }),
  queueDepth: field(int(1, 65536), {
    // Per-LU task set capacity (SAM-5 5.3.2); the LUN worker applies the default
    // (DEFAULT_QUEUE_DEPTH in task-set.ts, which the supervisor may not import).
    docDefault: '`128`',
    reload: restart,
    doc: "commands the LU's task set holds at once, across all I_T nexuses; beyond it TASK SET FULL (BUSY when the nexus has nothing in the set)",
  }),
  serial: field(asciiField(32), {
    docDefault: 'derived',
    reload: restart,
    doc: 'unit serial number (VPD 0x80); derived from `clusterId` and `name` when absent',
  }),
  vendor: field(asciiField(8), {
    default: 'SPINDLE',
    reload: restart,
    doc: 'INQUIRY T10 vendor identification',
  }),
  product: field(asciiField(16), {
    default: 'VDISK',
    reload: restart,
    doc: 'INQUIRY product identification',
  }),
};

/** What the device rules read: any device section, whatever backing kinds it has. */
interface DeviceRuleView {
  readonly backing?: { readonly type: string };
  readonly blockSize?: number;
  readonly physicalBlockSize?: number;
  readonly thin?: boolean;
}
type DeviceRule = (v: DeviceRuleView, r: RuleContext) => void;

/** Any backing store with a size holds whole logical blocks. */
const sizeInWholeBlocks: DeviceRule = (v, r) => {
  const b = v.backing;
  if (b === undefined || v.blockSize === undefined || !('size' in b) || typeof b.size !== 'number') return;
  if (b.size % v.blockSize !== 0) {
    r.report([b.type, 'size'], `size ${b.size} bytes is not a multiple of the block size (${v.blockSize})`);
  }
};

const physicalNotBelowLogical: DeviceRule = (v, r) => {
  if (v.physicalBlockSize === undefined || v.blockSize === undefined) return;
  if (v.physicalBlockSize < v.blockSize) {
    r.report(
      ['physicalBlockSize'],
      `must be at least the logical block size (${v.blockSize}), got ${v.physicalBlockSize}`,
    );
  }
};

/** 2048-byte blocks are a CD-ROM's (MMC-6 4.2.2), and a CD-ROM has no other size. */
const cdromBlockSize: DeviceRule = (v, r) => {
  if (v.backing === undefined || v.blockSize === undefined) return;
  const cdrom = v.backing.type === 'cdrom';
  if (cdrom && v.blockSize !== 2048) r.report(['blockSize'], `a cdrom has 2048-byte blocks, got ${v.blockSize}`);
  if (!cdrom && v.blockSize === 2048) r.report(['blockSize'], '2048 is the block size of a cdrom; a disk has 512 or 4096');
};

/** What a CD-ROM drive does not have: thin provisioning, another physical block size. */
const cdromFeatures: DeviceRule = (v, r) => {
  if (v.backing?.type !== 'cdrom') return;
  if (v.thin === true) r.report(['thin'], 'a cdrom is read-only: it has no thin provisioning');
  if (v.physicalBlockSize !== undefined) r.report(['physicalBlockSize'], 'a cdrom has 2048-byte blocks only');
};

/** `prefix` qualifies a configured size. */
const prefixNeedsSize: DeviceRule = (v, r) => {
  const b = v.backing as { type: string; size?: number; prefix?: boolean } | undefined;
  if (b?.type === 'block' && b.prefix === true && b.size === undefined)
    r.report(['block', 'prefix'], 'prefix exports the first `size` bytes of the device: set size too');
};

/** The rules of a device entry (for a device section with more backing kinds, too). */
export const deviceRules: readonly DeviceRule[] = [
  sizeInWholeBlocks,
  physicalNotBelowLogical,
  cdromBlockSize,
  cdromFeatures,
  prefixNeedsSize,
];

const deviceRows = section(deviceFields, { table: 'devices', rules: deviceRules });

/**
 * YAML reads a bare `null:` key as the null scalar, which becomes the key "" in the parsed
 * mapping; a device entry takes it for `null` (quoted `"null":` is the key itself).
 */
function nullKeyAsNull(raw: unknown): unknown {
  if (!isObj(raw) || !Object.hasOwn(raw, '') || Object.hasOwn(raw, 'null')) return raw;
  const { '': value, ...rest } = raw;
  return { ...rest, null: value };
}

export const deviceSection: typeof deviceRows = {
  ...deviceRows,
  parse: (raw, at, ctx) => deviceRows.parse(nullKeyAsNull(raw), at, ctx),
};

function wellFormedDeviceName(raw: unknown): string | undefined {
  const name = isObj(raw) ? raw['name'] : undefined;
  return typeof name === 'string' && isIdentifier(name, 64) ? name : undefined;
}

/** devices[]: names unique, and every well-formed name known to the LUN maps that follow. */
export const deviceListOptions: ListOptions<unknown> = {
  unique: {
    of: (raw) => wellFormedDeviceName(raw),
    at: 'name',
    message: (first, raw) => `duplicate device name "${wellFormedDeviceName(raw)}" (also devices[${first}])`,
  },
  rules: [
    (raws, _at, ctx) => {
      const names = ctx.scoped(DEVICE_NAMES);
      for (const raw of raws) {
        const name = wellFormedDeviceName(raw);
        if (name !== undefined) names.add(name);
      }
    },
  ],
};

export const deviceList = list(deviceSection, deviceListOptions);

// ---- secrets kept out of the file (CHAP secrets, the Redis password, the API token) ----

const envName = text('environment variable name', (s) =>
  /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? undefined : `must be an environment variable name, got ${JSON.stringify(s)}`,
);

/**
 * A secret read from the environment variable `env` or the file `file` (one trailing
 * newline dropped), at load time; problems are reported at `at` (the row that named the
 * source). The value itself never appears in a message.
 */
function readSecret(env: string | undefined, file: string | undefined, at: Path, ctx: Ctx): string | undefined {
  if (env !== undefined) {
    const value = ctx.env.vars?.[env];
    if (value === undefined || value === '') ctx.report(at, `environment variable ${env} is not set`);
    return value;
  }
  if (file !== undefined) {
    try {
      const read = ctx.env.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
      return read(file).replace(/\r?\n$/, '');
    } catch (err) {
      ctx.report(at, `cannot read ${file}: ${(err as Error).message}`);
      return undefined;
    }
  }
  return undefined;
}

// ---- auth (targets[].auth, targets[].acls[].auth, discovery.auth) ----

const chapFields = {
  user: field(label('CHAP user name'), {
    required: 'CHAP user name is required',
    doc: "the CHAP name (CHAP_N): the initiator's in `chap`, the target's in `mutualChap`",
  }),
  secret: field(chapSecret, {
    // One of secret, secretFile, secretEnv (oneChapSecret); a missing one is reported here.
    required: (m) => (absent(m['secretFile']) && absent(m['secretEnv']) ? 'CHAP secret is required' : undefined),
    docDefault: 'one of `secret`, `secretFile`, `secretEnv`',
    doc: 'the CHAP secret; RFC 7143 12.1.3 requires at least 12 bytes (12-16 recommended). Never shown in messages',
  }),
  secretFile: field(fsPath('file'), {
    doc: 'file holding the secret instead (e.g. a mounted Kubernetes Secret; one trailing newline is ignored); read at start and at every reload',
  }),
  secretEnv: field(envName, { doc: 'environment variable holding the secret instead' }),
};

const oneChapSecret: SectionRule<typeof chapFields> = (_v, r) => {
  const given = ['secret', 'secretFile', 'secretEnv'].filter((k) => r.given(k));
  if (given.length > 1) r.report([], `${given.join(' and ')} are mutually exclusive: give the secret one way`);
};

const chapRows = section(chapFields, { table: 'chap', rules: [oneChapSecret] });

/**
 * CHAP credentials, with the secret read from where the rows say (`secretFile`,
 * `secretEnv`) at load time and checked like an inline one: the output has `secret`,
 * never its source, so a configuration in a ConfigMap can keep its secrets in a Secret.
 */
export const chapSection: Node<ChapCredentials> & { fields: typeof chapFields } = {
  accepts: chapRows.accepts,
  fields: chapRows.fields,
  table: 'chap',
  parse(raw, at, ctx) {
    const parsed = chapRows.parse(raw, at, ctx);
    if (parsed === undefined) return undefined;
    if (parsed.secret !== undefined) return { user: parsed.user, secret: parsed.secret };
    const from = parsed.secretEnv !== undefined ? 'secretEnv' : 'secretFile';
    const before = ctx.issueCount;
    const value = readSecret(parsed.secretEnv, parsed.secretFile, [...at, from], ctx);
    if (value === undefined || ctx.issueCount > before) return undefined;
    const secret = chapSecret.parse(value, [...at, from], ctx);
    return secret === undefined ? undefined : { user: parsed.user, secret };
  },
};

/**
 * RFC 7143 12.1.3: the initiator challenges the target inside the CHAP exchange the target
 * started, so mutual CHAP cannot exist without one-way CHAP.
 */
const mutualNeedsChap: SectionRule<typeof authFields> = (_v, r) => {
  if (r.given('mutualChap') && !r.given('chap')) {
    r.report(
      ['mutualChap'],
      'mutualChap requires chap: the initiator can only challenge the target during a CHAP login (RFC 7143 section 12.1.3)',
    );
  }
};

const rememberChapSecrets: SectionRule<typeof authFields> = (v, r) => {
  const uses = r.ctx.scoped(CHAP_SECRETS);
  if (v.chap !== undefined)
    uses.push({ at: [...r.at, 'chap', 'secret'], secret: v.chap.secret, role: 'initiator' });
  if (v.mutualChap !== undefined) {
    uses.push({ at: [...r.at, 'mutualChap', 'secret'], secret: v.mutualChap.secret, role: 'target' });
  }
};

const authFields = {
  chap: field(chapSection, {
    doc: 'one-way CHAP: the initiator must authenticate with these credentials',
  }),
  mutualChap: field(chapSection, {
    doc: 'what the target answers with when the initiator authenticates it (mutual CHAP). Needs `chap`. Its secret must differ from every `chap` secret in the file (RFC 7143 9.2.1: no secret in both directions)',
  }),
};

export const authSection = section(authFields, { rules: [mutualNeedsChap, rememberChapSecrets] });

/**
 * RFC 7143 section 9.2.1: a CHAP secret used to authenticate initiators must not be
 * configured to authenticate a target (or the reverse); otherwise an attacker can reflect
 * one side's challenge to the other and get it answered. Checked across the whole file,
 * discovery included. The secrets themselves are never echoed.
 */
function checkChapSecretReuse(ctx: Ctx): void {
  const uses = ctx.scoped(CHAP_SECRETS);
  const initiatorSecrets = uses.filter((u) => u.role === 'initiator');
  for (const t of uses) {
    if (t.role !== 'target') continue;
    const clash = initiatorSecrets.find((i) => i.secret === t.secret);
    if (clash === undefined) continue;
    ctx.report(
      t.at,
      `must differ from the secret at ${formatPath(clash.at)}: RFC 7143 section 9.2.1 forbids using one CHAP secret in both directions (initiator and target authentication)`,
    );
  }
}

// ---- targets[].acls[] (LUN masking) ----

const aclFields = {
  initiator: field(initiatorPattern, {
    docDefault: 'this or `initiators`',
    doc: 'one initiator name or pattern',
  }),
  initiators: field(
    list(initiatorPattern, {
      notList: 'must be a list of iSCSI names or patterns',
      empty: 'at least one iSCSI name or pattern is required',
      accepts: 'list of iSCSI names or patterns',
    }),
    {
      docDefault: 'this or `initiator`',
      doc: 'a list of names or patterns (give `initiator` or `initiators`, not both). A pattern uses `*` for any run of characters, e.g. `iqn.1994-05.com.redhat:*`. Names compare case-insensitively; each name or pattern may appear in only one entry of a target',
    },
  ),
  luns: field(lunMap('ACL entry'), {
    required: LUN_REQUIRED,
    doc: "this entry's own LUN map (LUN number to device name), as its initiators see it in REPORT LUNS and address it",
  }),
  auth: field(authSection, {
    collapse: true,
    docDefault: "the target's `auth`",
    doc: "credentials for this entry's initiators, replacing the target's",
  }),
};

const oneInitiatorKey: SectionRule<typeof aclFields> = (_v, r) => {
  if (!r.given('initiator') && !r.given('initiators')) {
    r.report(
      ['initiator'],
      'initiator is required: an iSCSI name or a pattern such as "iqn.1994-05.com.redhat:*" (or initiators: [...])',
    );
  } else if (r.given('initiator') && r.given('initiators')) {
    r.report(['initiators'], 'give either initiator or initiators, not both');
  }
};

export const aclSection = section(aclFields, {
  table: 'acls',
  rules: [oneInitiatorKey],
  // The YAML `initiator: X` form is normalized to a one-element list.
  build: (e): AclEntry => ({
    initiators: e.initiator === undefined ? (e.initiators ?? []) : [e.initiator],
    luns: e.luns,
    ...(e.auth === undefined ? {} : { auth: e.auth }),
  }),
});

/** One target: each name or pattern in only one entry (RFC 7143 4.2.7.2: compared case-insensitively). */
function initiatorsListedOnce(raws: readonly unknown[], at: Path, ctx: Ctx): void {
  const seen = new Map<string, string>();
  raws.forEach((e, i) => {
    if (!isObj(e) || absent(e['initiator']) === absent(e['initiators'])) return;
    const names: Array<[unknown, Path]> = !absent(e['initiator'])
      ? [[e['initiator'], [...at, i, 'initiator']]]
      : Array.isArray(e['initiators'])
        ? e['initiators'].map((n: unknown, k: number): [unknown, Path] => [n, [...at, i, 'initiators', k]])
        : [];
    for (const [name, nat] of names) {
      if (typeof name !== 'string' || initiatorPatternProblem(name) !== undefined) continue;
      const key = name.toLowerCase();
      const first = seen.get(key);
      if (first !== undefined) ctx.report(nat, `${JSON.stringify(name)} is already listed at ${first}`);
      else seen.set(key, formatPath(nat));
    }
  });
}

// ---- targets[] ----

const targetFields = {
  iqn: field(iscsiName, {
    required: 'iqn is required, e.g. iqn.2026-11.io.spindle:demo',
    doc: 'the target name, unique (case-insensitive)',
  }),
  alias: field(label('alias'), { doc: 'TargetAlias' }),
  portals: field(
    list(portal, {
      notList: 'must be a list of "host:port" strings',
      empty: PORTAL_REQUIRED,
      unique: {
        of: (_raw, p) => (p === undefined ? undefined : portalKey(p)),
        message: (first, _raw, p) =>
          `duplicate portal ${p === undefined ? '' : displayPortal(p)} (same as portals[${first}])`,
      },
    }),
    {
      required: PORTAL_REQUIRED,
      // Listening sockets; reload.ts also refuses a portal no target uses any more.
      reload: restart,
      doc: 'the port defaults to 3260; IPv6 as `[::1]:3260`. Each distinct portal gets one fabric port worker and is its own target portal group (tag = 1, 2, ... in order of first appearance)',
    },
  ),
  luns: field(lunMap('target'), {
    // With ACLs the target's own map serves only `defaultAccess: allow`; it may be omitted.
    required: (t) => (absent(t['acls']) ? LUN_REQUIRED : undefined),
    docDefault: 'required (optional with `acls`)',
    doc: 'a device may be exported by several targets, but only once per map',
  }),
  auth: field(authSection, { doc: 'credentials for logging in to this target' }),
  acls: field(
    list(aclSection, {
      notList: 'must be a list of { initiator, luns } entries',
      empty: 'at least one entry is required (without acls every initiator sees luns)',
      rules: [initiatorsListedOnce],
    }),
    { doc: 'LUN masking: a list of entries, below. Without `acls` every allowed initiator sees `luns`' },
  ),
  defaultAccess: field(oneOf(['allow', 'deny'] as const), {
    // With ACLs an initiator no entry names is refused unless the operator says otherwise.
    default: ({ mapping }) => (absent(mapping['acls']) ? undefined : 'deny'),
    docDefault: '`allow` without `acls`, `deny` with them',
    doc: 'initiators matching no ACL entry: `allow` sees `luns`, `deny` is refused at login (AUTHORIZATION FAILURE) and not listed by SendTargets. `allow` with `acls` needs a non-empty `luns`',
  }),
};

const allowNeedsLuns: SectionRule<typeof targetFields> = (v, r) => {
  if (r.given('acls') && v.defaultAccess === 'allow' && !r.given('luns')) {
    r.report(
      ['luns'],
      "defaultAccess: allow shows the target's luns to initiators matching no ACL entry: at least one LUN is required, e.g. { 0: ram0 }",
    );
  }
};

export const targetSection = section(targetFields, {
  table: 'targets',
  rules: [allowNeedsLuns],
  build: (t) => ({ ...t, luns: t.luns ?? {} }),
});

export const targetList = list(targetSection, {
  unique: {
    of: (raw) => (isObj(raw) && typeof raw['iqn'] === 'string' ? raw['iqn'].toLowerCase() : undefined),
    at: 'iqn',
    message: (first) => `duplicate target name (also targets[${first}])`,
  },
});

export const discoverySection = section({
  auth: field(authSection, { doc: 'credentials for discovery sessions (SendTargets)' }),
});


// ---- cluster ----

/** portalKey() of every portal some cluster node serves. */
const NODE_PORTALS = scopeKey('cluster node portals', () => new Map<string, string>());

/** A node's portal: like a target portal, remembered for the "every target portal has a node" rule. */
const nodePortal = leaf<PortalConfig>('`"host:port"`', (raw, at, ctx) => {
  if (typeof raw !== 'string') {
    ctx.report(at, `portal must be a string "host:port", got ${describe(raw)}`);
    return undefined;
  }
  const p = parsePortal(raw);
  if (typeof p === 'string') {
    ctx.report(at, p);
    return undefined;
  }
  const nodes = ctx.scoped(NODE_PORTALS);
  const k = portalKey(p);
  const other = nodes.get(k);
  if (other !== undefined) {
    ctx.report(at, `portal ${displayPortal(p)} is already served by ${other}`);
    return undefined;
  }
  nodes.set(k, formatPath(at.slice(0, -2)));
  return p;
});

/** A Sentinel address: "host:port" with the port written out (Sentinels listen on 26379 by convention, not 3260). */
const sentinelAddress = leaf<PortalConfig>('`"host:port"`', (raw, at, ctx) => {
  if (typeof raw !== 'string' || !/:\d+$/.test(raw.trim())) {
    ctx.report(at, `must be a Sentinel address "host:port", e.g. "10.0.0.7:26379", got ${describe(raw)}`);
    return undefined;
  }
  const p = parsePortal(raw);
  if (typeof p === 'string') {
    ctx.report(at, p.replace('portal', 'Sentinel address'));
    return undefined;
  }
  return p;
});

const redisUrl = text('`redis://host:port[/db]` or `rediss://` (TLS)', (s) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `must be a URL redis://host:port[/db], got ${JSON.stringify(s)}`;
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return `must start with redis:// or rediss://, got ${JSON.stringify(s)}`;
  if (u.password !== '') return 'must not hold a password: use passwordFile or passwordEnv (secrets never sit in the configuration file)';
  return undefined;
});


const redisTlsSection = section({
  ca: field(fsPath('file'), { doc: 'PEM file of the CA that signed the server certificate' }),
  cert: field(fsPath('file'), { doc: 'client certificate (PEM), when Redis asks for one' }),
  key: field(fsPath('file'), { doc: 'client key (PEM)' }),
  servername: field(label('TLS server name'), { doc: 'name to check the server certificate against (default: the host)' }),
});

const redisFields = {
  url: field(redisUrl, { doc: 'a standalone Redis (or one reached through a proxy); `SPINDLE_REDIS_URL` overrides it' }),
  sentinels: field(list(sentinelAddress, { notList: 'must be a list of "host:port"', empty: 'at least one Sentinel, or leave sentinels out' }), {
    doc: 'Redis Sentinels (instead of `url`); the node follows the master they name through failovers',
  }),
  masterName: field(identifier(128), { doc: 'the master name the Sentinels monitor (with `sentinels`)', docDefault: '`spindle`' }),
  db: field(int(0, 1023), { doc: 'logical database (with `sentinels`; a URL carries its own)' }),
  waitReplicas: field(int(0, 16), {
    default: ({ siblings }) => (siblings['sentinels'] !== undefined ? 1 : 0),
    docDefault: '`1` with `sentinels`, else `0`',
    doc: 'replicas that must confirm a reservation change (Redis `WAIT`) before PR OUT completes, so a failover right after it keeps it; past the wait (the node\'s Redis command timeout) the change is reported with a warning',
  }),
  username: field(label('Redis user name'), { doc: 'Redis ACL user (Redis 6+)' }),
  passwordFile: field(fsPath('file'), { doc: 'file holding the password (e.g. a mounted Kubernetes Secret); read at start' }),
  passwordEnv: field(envName, { doc: 'environment variable holding the password' }),
  tls: field(redisTlsSection, { collapse: true, doc: '`{ ca, cert, key, servername }`: TLS to Redis (and Sentinels)' }),
};

const oneRedisEndpoint: SectionRule<typeof redisFields> = (v, r) => {
  const url = r.given('url');
  const sentinels = r.given('sentinels');
  if (url && sentinels) r.report([], 'url and sentinels are mutually exclusive');
  if (!url && !sentinels) r.report([], 'url or sentinels is required, e.g. url: redis://10.0.0.7:6379');
  if (r.given('masterName') && !sentinels) r.report(['masterName'], 'masterName goes with sentinels');
  if (r.given('passwordFile') && r.given('passwordEnv')) r.report([], 'passwordFile and passwordEnv are mutually exclusive');
  void v;
};

/** The password, read from where the file says, at load time; never from the file itself. */
function resolvePassword(v: { passwordFile?: string; passwordEnv?: string }, at: Path, ctx: Ctx): string | undefined {
  const from = v.passwordEnv !== undefined ? 'passwordEnv' : 'passwordFile';
  return readSecret(v.passwordEnv, v.passwordFile, [...at, from], ctx);
}

const redisSectionRows = section(redisFields, { table: 'cluster-redis', rules: [oneRedisEndpoint] });

/** The redis rows, with the password read from where they say (the output has `password`, never its source). */
const redisSection: Node<ClusterRedisConfig> = {
  accepts: redisSectionRows.accepts,
  fields: redisSectionRows.fields,
  table: 'cluster-redis',
  parse(raw, at, ctx) {
    const parsed = redisSectionRows.parse(raw, at, ctx);
    if (parsed === undefined) return undefined;
    const before = ctx.issueCount;
    const password = resolvePassword(parsed, at, ctx);
    if (ctx.issueCount > before) return undefined;
    const { passwordFile: _f, passwordEnv: _e, ...rest } = parsed;
    return { ...rest, ...(password === undefined ? {} : { password }) };
  },
};

const leaseFields = {
  ttlSec: field(seconds(0.5, 600), { default: 10, doc: 'a lease lives this long in Redis after each renewal; a node whose lease is gone is dead to its peers' }),
  renewSec: field(seconds(0.05, 300), {
    default: ({ siblings }) => (typeof siblings['ttlSec'] === 'number' ? siblings['ttlSec'] / 5 : undefined),
    docDefault: '`ttlSec` / 5',
    doc: 'heartbeat interval',
  }),
  marginSec: field(seconds(0.05, 300), {
    default: ({ siblings }) => (typeof siblings['ttlSec'] === 'number' ? siblings['ttlSec'] * 0.3 : undefined),
    docDefault: '`ttlSec` x 0.3',
    doc: 'a node that could not renew stops I/O this long before its lease can expire in Redis (room for I/O in flight and clock-rate error)',
  }),
};

const leaseFits: SectionRule<typeof leaseFields> = (v, r) => {
  if (v.ttlSec === undefined || v.renewSec === undefined || v.marginSec === undefined) return;
  if (v.marginSec >= v.ttlSec) r.report(['marginSec'], `must be less than ttlSec (${v.ttlSec})`);
  else if (v.renewSec > (v.ttlSec - v.marginSec) / 2)
    r.report(['renewSec'], `must be at most (ttlSec - marginSec) / 2 = ${(v.ttlSec - v.marginSec) / 2}: a node must get two tries to renew before it fences itself`);
};

const leaseSection = section(leaseFields, { table: 'cluster-lease', rules: [leaseFits] });

const nodeFields = {
  id: field(identifier(253), { required: 'id is required: the name this node is started with (--node, SPINDLE_NODE_ID or nodeId)', doc: 'the node\'s name' }),
  portals: field(list(nodePortal, { notList: 'must be a list of "host:port" strings', empty: PORTAL_REQUIRED }), {
    required: PORTAL_REQUIRED,
    doc: 'the portals this node listens on (each also in some target\'s `portals`); together they are the node\'s target port group',
  }),
  portGroup: field(int(1, 65535), { docDefault: 'derived from `id`', doc: 'TARGET PORT GROUP of the node (SPC-4 5.16); derived from the id when absent, stable across restarts and edits' }),
};

const nodeSection = section(nodeFields, { table: 'cluster-nodes' });

const nodeList = list(nodeSection, {
  notList: 'must be a list of { id, portals } entries',
  empty: 'at least one node is required',
  unique: {
    of: (raw) => (isObj(raw) && typeof raw['id'] === 'string' ? raw['id'] : undefined),
    at: 'id',
    message: (first) => `duplicate node id (also nodes[${first}])`,
  },
});

const clusterFields = {
  redis: field(redisSection, { required: 'redis is required: where the cluster state lives, e.g. { url: redis://10.0.0.7:6379 }', doc: 'the Redis holding reservations, unit attentions, leases and node states, below' }),
  lease: field(leaseSection, { default: {}, doc: 'lease timings, below' }),
  nodes: field(nodeList, { required: 'nodes is required: every node with the portals it serves', doc: 'every node of the cluster, below' }),
};

const clusterSection = section(clusterFields, {
  table: 'cluster',
  build: (c): ClusterConfig => ({
    redis: c.redis,
    lease: {
      ttlMs: Math.round(c.lease.ttlSec * 1000),
      renewMs: Math.round((c.lease.renewSec ?? c.lease.ttlSec / 5) * 1000),
      marginMs: Math.round((c.lease.marginSec ?? c.lease.ttlSec * 0.3) * 1000),
    },
    nodes: c.nodes.map((n): ClusterNodeConfig => ({ id: n.id, portals: n.portals, ...(n.portGroup === undefined ? {} : { portGroup: n.portGroup }) })),
  }),
});

// ---- api ----

/** A loopback address: the admin API may listen there without a token. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '0:0:0:0:0:0:0:1';
}

/** The admin API's address: "host:port" with the port written out (no default port to guess). */
const apiListen = leaf<PortalConfig>('`"host:port"`', (raw, at, ctx) => {
  if (typeof raw !== 'string' || !/:\d+$/.test(raw.trim())) {
    ctx.report(at, `must be "host:port", e.g. "127.0.0.1:9470", got ${describe(raw)}`);
    return undefined;
  }
  const p = parsePortal(raw);
  if (typeof p === 'string') {
    ctx.report(at, p.replace('portal', 'listen'));
    return undefined;
  }
  return p;
});

/** Tokens shorter than this are refused: the token is the API's only protection off loopback. */
export const MIN_API_TOKEN_BYTES = 16;

const apiFields = {
  listen: field(apiListen, {
    default: '127.0.0.1:9470',
    doc: 'where the admin HTTP API and `/metrics` listen; any address but loopback needs a token. `--api HOST:PORT` overrides it',
  }),
  tokenFile: field(fsPath('file'), {
    doc: `file holding the bearer token (at least ${MIN_API_TOKEN_BYTES} bytes; e.g. a mounted Kubernetes Secret; one trailing newline is ignored); read at start`,
  }),
  tokenEnv: field(envName, { doc: 'environment variable holding the bearer token' }),
};

const apiRules: SectionRule<typeof apiFields> = (v, r) => {
  const file = r.given('tokenFile');
  const env = r.given('tokenEnv');
  if (file && env) r.report([], 'tokenFile and tokenEnv are mutually exclusive');
  if (r.given('token')) return; // reported as an unknown key; the token never sits in the file
  if (v.listen !== undefined && !isLoopbackHost(v.listen.host) && !file && !env) {
    r.report(
      ['listen'],
      `listens on ${displayPortal(v.listen)}, beyond this host: a bearer token is required (tokenFile or tokenEnv), or listen on 127.0.0.1`,
    );
  }
};

const apiRows = section(apiFields, { table: 'api', rules: [apiRules] });

/** The api rows, with the token read from where they say (the output has `token`, never its source). */
const apiSection: Node<ApiConfig> & { fields: typeof apiFields } = {
  accepts: apiRows.accepts,
  fields: apiRows.fields,
  table: 'api',
  parse(raw, at, ctx) {
    const parsed = apiRows.parse(raw, at, ctx);
    if (parsed === undefined) return undefined;
    if (parsed.tokenFile === undefined && parsed.tokenEnv === undefined) return { listen: parsed.listen };
    const from = parsed.tokenEnv !== undefined ? 'tokenEnv' : 'tokenFile';
    const before = ctx.issueCount;
    const token = readSecret(parsed.tokenEnv, parsed.tokenFile, [...at, from], ctx);
    if (token === undefined || ctx.issueCount > before) return undefined;
    if (Buffer.byteLength(token) < MIN_API_TOKEN_BYTES || /\s/.test(token)) {
      ctx.report([...at, from], `the token must be at least ${MIN_API_TOKEN_BYTES} bytes without white space (e.g. openssl rand -hex 32)`);
      return undefined;
    }
    return { listen: parsed.listen, token };
  },
};

// ---- the file ----

export const configFields = {
  clusterId: field(identifier(64), {
    default: 'spindle',
    reload: restart,
    doc: 'LU identifiers (NAA designator in VPD 0x83, unit serial) derive from it and the device name, so every node of a cluster would report the same LU',
  }),
  nodeId: field(identifier(253), {
    default: ({ env }) => env.hostname,
    docDefault: 'host name',
    invalidDefault: (host) => `the host name ${JSON.stringify(host)} is not a valid node id; set nodeId`,
    reload: restart,
    doc: "this node's name (logs)",
  }),
  stateDir: field(fsPath('directory'), {
    default: './.spindle',
    reload: restart,
    doc: 'local state: `pr/<NAA>.json` (APTPL reservations), `mode-pages/<device>.json` (saved mode pages), `sanitize/<device>.json` (a sanitize running or failed on a file device, so that it resumes, or stays failed, after a restart)',
  }),
  workers: field(workersSection, { default: {}, reload: restart, doc: '' }),
  logging: field(loggingSection, { default: {}, reload: restart, doc: '' }),
  iscsi: field(iscsiSection, { default: {}, reload: restart, doc: 'iSCSI tuning, below' }),
  devices: field(deviceList, {
    default: [],
    reload: live,
    doc: 'backing devices, below (added and removed live)',
  }),
  targets: field(targetList, {
    default: [],
    reload: live,
    doc: 'iSCSI targets, below (added and removed live, on portals already served)',
  }),
  aluaStates: field(aluaStatesMap, {
    default: {},
    docDefault: 'all `active-optimized`',
    reload: live,
    doc: 'asymmetric access state of each portal\'s target port group (SPC-4 5.16), keyed by a portal some target uses, e.g. `aluaStates: { "10.0.0.5:3260": standby }`',
  }),
  discovery: field(discoverySection, { default: {}, reload: live, doc: '' }),
  cluster: field(clusterSection, {
    reload: restart,
    doc: 'several nodes exporting the same LUs, with reservations, unit attentions and leases in Redis; below. Absent: one node, state on local disk',
  }),
  api: field(apiSection, {
    reload: restart,
    doc: 'the admin HTTP API and Prometheus `/metrics` of this node, below (`api: {}` serves them on 127.0.0.1:9470). Absent: no API',
  }),
};

/**
 * A cluster (DESIGN.md "Cluster"): every node serves every target's LUs from storage they
 * all reach. What that rules out, and what it needs:
 *   - this process must be one of the nodes (--node, SPINDLE_NODE_ID or nodeId);
 *   - every portal a target lists is served by exactly one node (and a node's portals
 *     belong to some target);
 *   - RAM devices are per process, so two nodes would show different data under one LU
 *     identity: refused; file and block devices need O_DIRECT (`direct`), so no node
 *     reads its own stale page cache; thin provisioning's allocation map lives in one
 *     node's memory: refused on files until it is held cluster-wide (a thin block device
 *     has no map: the device deallocates). Null devices hold nothing and CD-ROM images
 *     are read-only, so nodes cannot disagree about them;
 *   - `aluaStates` names portals of one node: the cluster sets states per node
 *     (spindle node drain, SET TARGET PORT GROUPS);
 *   - derived port group and port ids must not collide.
 */
function clusterRules(v: Partial<SchemaOutputShape>, r: RuleContext): void {
  // Checked whenever the file has a cluster, also when the section itself has mistakes.
  if (!r.given('cluster')) return;
  const served = r.ctx.scoped(NODE_PORTALS);
  const used = r.ctx.scoped(TARGET_PORTALS);
  (v.targets ?? []).forEach((t, ti) =>
    t.portals.forEach((p, pi) => {
      if (!served.has(portalKey(p)))
        r.report(['targets', ti, 'portals', pi], `portal ${displayPortal(p)} is served by no cluster node: add it to one of cluster.nodes[].portals`);
    }),
  );
  (v.devices ?? []).forEach((d, di) => {
    const b = d.backing;
    if (b.type === 'ram')
      r.report(['devices', di, 'ram'], 'a RAM device cannot be shared by cluster nodes (each node would have its own): use storage every node reaches (file)');
    if ((b.type === 'file' || b.type === 'block') && d.direct === false)
      r.report(['devices', di, 'direct'], 'a cluster device must use direct I/O: with the page cache a node could serve a stale read of data another node wrote');
    if (b.type === 'file' && d.thin === true)
      r.report(['devices', di, 'thin'], 'thin provisioning is not available on cluster devices (its allocation map is held by one node)');
  });
  if (r.given('aluaStates') && (v.aluaStates ?? []).length > 0)
    r.report(['aluaStates'], 'not used in a cluster: node states come from spindle node drain|undrain and SET TARGET PORT GROUPS');

  const c = v.cluster;
  // The rest needs the section itself (a section that failed, or another schema's, is skipped).
  if (c === undefined || !Array.isArray(c.nodes)) return;
  const nodes: readonly ClusterNodeConfig[] = c.nodes.filter(
    (n: ClusterNodeConfig) => Array.isArray(n.portals) && n.portals.every((p: PortalConfig | undefined) => typeof p?.host === 'string'),
  );
  if (v.nodeId !== undefined && r.ctx.env.operator !== true && !nodes.some((n) => n.id === v.nodeId)) {
    r.report(
      ['nodeId'],
      `this node is "${v.nodeId}", which is not one of cluster.nodes (${nodes.map((n) => n.id).join(', ')}): start it with --node ID or SPINDLE_NODE_ID`,
    );
  }
  nodes.forEach((n, ni) =>
    n.portals.forEach((p: PortalConfig, pi: number) => {
      if (!used.has(portalKey(p))) r.report(['cluster', 'nodes', ni, 'portals', pi], `no target lists ${displayPortal(p)}: add it to a target's portals`);
    }),
  );
  const groups = new Map<number, string>();
  const ports = new Map<number, string>();
  for (const n of nodes) {
    const g = nodePortGroup(n);
    const other = groups.get(g);
    if (other !== undefined) r.report(['cluster', 'nodes'], `nodes ${other} and ${n.id} have the same port group ${g}: set portGroup on one of them`);
    groups.set(g, n.id);
    for (const p of n.portals) {
      const id = portalPortId(n.id, p);
      const o = ports.get(id);
      if (o !== undefined) r.report(['cluster', 'nodes'], `portals ${o} and ${displayPortal(p)} derive the same target port id ${id}: change one of them`);
      ports.set(id, displayPortal(p));
    }
  }
}

type SchemaOutputShape = {
  nodeId: string;
  targets: readonly TargetConfig[];
  devices: readonly DeviceConfig[];
  aluaStates: readonly PortalAluaState[];
  cluster: ClusterConfig;
};

/** Rules over the whole file. */
export const configRules: readonly ((v: object, r: RuleContext) => void)[] = [
  (_v, r) => checkChapSecretReuse(r.ctx),
  (v, r) => clusterRules(v as Partial<SchemaOutputShape>, r),
];

/**
 * Settings that come from the command line or the environment rather than the file:
 * `--node` (or SPINDLE_NODE_ID) names the cluster node this process is, SPINDLE_REDIS_URL
 * points one node at another Redis address (a proxy, in tests), and `{node}` in stateDir
 * stands for the node id (several nodes of one file on one host).
 */
function applyOverrides(raw: Record<string, unknown>, env: ConfigEnv): Record<string, unknown> {
  const out = { ...raw };
  const node = env.node ?? env.vars?.['SPINDLE_NODE_ID'];
  if (node !== undefined && node !== '') out['nodeId'] = node;
  if (env.apiListen !== undefined && env.apiListen !== '') {
    const api = out['api'];
    out['api'] = { ...(isObj(api) ? api : {}), listen: env.apiListen };
  }
  const url = env.vars?.['SPINDLE_REDIS_URL'];
  const cluster = out['cluster'];
  if (url !== undefined && url !== '' && isObj(cluster) && isObj(cluster['redis'])) {
    const { sentinels: _s, masterName: _m, ...redis } = cluster['redis'];
    out['cluster'] = { ...cluster, redis: { ...redis, url } };
  }
  return out;
}

/** After validation: what follows from other settings (a cluster's devices default to direct I/O). */
function finish(config: SpindleConfig): SpindleConfig {
  let out = config;
  if (out.stateDir.includes('{node}')) out = { ...out, stateDir: out.stateDir.replaceAll('{node}', out.nodeId) };
  if (out.cluster !== undefined) {
    out = { ...out, devices: out.devices.map((d) => (d.direct === undefined && d.backing.type === 'file' ? { ...d, direct: true } : d)) };
  }
  return out;
}

export const configSchema = section(configFields, { table: 'top', rules: configRules });

// ---------------------------------------------------------------------------------------------
// Validation

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

/**
 * Validates parsed YAML. Returns the config (deep-frozen) only when there are no issues.
 */
export function validateConfig(
  raw: unknown,
  env: ConfigEnv = defaultEnv(),
): { config: SpindleConfig | undefined; issues: readonly RawIssue[] } {
  if (absent(raw)) {
    const issues = [
      { segments: [], message: 'the configuration is empty: expected a mapping with devices and targets' },
    ];
    return { config: undefined, issues };
  }
  const input = isObj(raw) ? applyOverrides(raw, env) : raw;
  const { value, issues } = validate(configSchema, input, env);
  return { config: value === undefined ? undefined : deepFreeze(finish(value)), issues };
}

// ---------------------------------------------------------------------------------------------
// Reload policy, derived from the rows (reload.ts)

export interface ConfigReloadPolicy {
  /** Top-level keys whose every setting is fixed for the run. */
  readonly fixed: readonly (keyof SpindleConfig)[];
  /** devices[]: fixed keys, and for each backing kind its keys' policies. */
  readonly device: {
    readonly fixed: readonly Exclude<keyof DeviceConfig, 'backing'>[];
    readonly backing: Readonly<Record<string, Readonly<Record<string, Reload | 'mixed'>>>>;
  };
  /** targets[]: keys fixed for the run. */
  readonly target: { readonly fixed: readonly (keyof TargetConfig)[] };
}

/**
 * The rows' `reload` settings as reload.ts needs them. Top-level, device and target keys are
 * the same in the file and in the output (only variants move, under `backing`), so the row
 * keys name the output fields; the compile-time checks below keep it that way.
 */
export const RELOAD_POLICY: ConfigReloadPolicy = (() => {
  const { devices, targets } = configFields;
  const device = reloadPolicy(devices.node, devices.spec.reload, 'devices[]');
  return {
    fixed: fixedKeys(reloadPolicy(configSchema, undefined, 'config')) as (keyof SpindleConfig)[],
    device: {
      fixed: fixedKeys(device) as Exclude<keyof DeviceConfig, 'backing'>[],
      backing: device.variants['backing'] ?? {},
    },
    target: {
      fixed: fixedKeys(
        reloadPolicy(targets.node, targets.spec.reload, 'targets[]'),
      ) as (keyof TargetConfig)[],
    },
  };
})();

// ---------------------------------------------------------------------------------------------
// Compile-time checks: the rows produce exactly the shapes workers are written against.

/** The keys of a type, all the way down (values reduced to 'value'), optionality and readonly ignored. */
type Shape<T> = T extends readonly (infer U)[]
  ? Shape<U>[]
  : T extends object
    ? { -readonly [K in keyof T]-?: Shape<Exclude<T[K], undefined>> }
    : 'value';
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

/** The configuration the rows produce. */
export type SchemaOutput = Infer<typeof configSchema>;

/** Every value the schema produces is a valid SpindleConfig (types, optional keys)... */
export type SchemaProducesConfig = Assert<SchemaOutput extends SpindleConfig ? true : false>;
/** ...and the schema has a row for every key of it and no other (devices, targets, ACLs, auth, tuning). */
export type SchemaCoversConfig = Assert<Equal<Shape<SchemaOutput>, Shape<SpindleConfig>>>;

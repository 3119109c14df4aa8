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
 * with `variant: 'backing'` beside `ram` and `file` (and its member in BackingConfig).
 */

import type {
  AclEntry,
  DeviceConfig,
  PortalAluaState,
  PortalConfig,
  SpindleConfig,
  TargetConfig,
} from '../../shared/config-types.ts';
import { ALUA_STATE_NAMES } from '../../shared/config-types.ts';
import { describe, formatPath, type Path, type RawIssue } from './issues.ts';
import { initiatorPatternProblem, iscsiNameProblem, MAX_ISCSI_NAME_BYTES } from './iscsi-names.ts';
import { displayPortal, parsePortal, portalKey } from './portals.ts';
import {
  absent,
  type Ctx,
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
};

export const iscsiSection = section(iscsiFields, { table: 'iscsi', rules: [firstBurstWithinMaxBurst] });

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

/** physicalBlockSize values: powers of two, 512 B to 64 KiB. */
const PHYSICAL_BLOCK_SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] as const;

export const deviceFields = {
  name: field(identifier(64), {
    required: 'device name is required',
    doc: 'unique; another name is another device (removed and added on reload)',
  }),
  ram: field(ramBacking, { variant: 'backing', doc: 'RAM-backed device (contents are lost at exit)' }),
  file: field(fileBacking, { variant: 'backing', doc: 'file-backed device' }),
  blockSize: field(oneOf([512, 4096] as const), {
    default: 512,
    reload: restart,
    doc: 'logical block size; the size must be a multiple',
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
    // Logical block provisioning (SBC-4 4.7). Omitted when false: absent means fully provisioned.
    default: false,
    omitWhenDefault: true,
    reload: restart,
    doc: 'thin provisioning: UNMAP, WRITE SAME with UNMAP, GET LBA STATUS, SANITIZE BLOCK ERASE / CRYPTOGRAPHIC ERASE; LBPME and LBPRZ in READ CAPACITY(16), LBPU/LBPWS/LBPWS10 in VPD 0xB2. Deallocated blocks read as zeros (zeros are written: Node has no hole punching). A file device keeps its allocation map in `<path>.map` across clean restarts and starts "all mapped" after a crash',
  }),
  removable: field(bool(), {
    // Removable medium (SPC-4 6.6.2 RMB). Omitted when false.
    default: false,
    omitWhenDefault: true,
    reload: restart,
    doc: 'removable medium: RMB in INQUIRY; START STOP UNIT with LOEJ ejects/loads; PREVENT ALLOW MEDIUM REMOVAL locks it (ILLEGAL REQUEST / MEDIUM REMOVAL PREVENTED); without medium, media commands fail with NOT READY / MEDIUM NOT PRESENT',
  }),
  writeCache: field(oneOf(['writethrough', 'writeback'] as const), {
    default: 'writeback',
    reload: restart,
    doc: '`writethrough` makes every write durable before its status; `writeback` relies on SYNCHRONIZE CACHE and FUA (both honoured). WCE in the caching mode page reflects it and MODE SELECT may change it',
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

/** The rules of a device entry (for a device section with more backing kinds, too). */
export const deviceRules: readonly DeviceRule[] = [sizeInWholeBlocks, physicalNotBelowLogical];

export const deviceSection = section(deviceFields, { table: 'devices', rules: deviceRules });

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

// ---- auth (targets[].auth, targets[].acls[].auth, discovery.auth) ----

export const chapSection = section(
  {
    user: field(label('CHAP user name'), {
      required: 'CHAP user name is required',
      doc: "the CHAP name (CHAP_N): the initiator's in `chap`, the target's in `mutualChap`",
    }),
    secret: field(chapSecret, {
      required: 'CHAP secret is required',
      doc: 'the CHAP secret; RFC 7143 12.1.3 requires at least 12 bytes (12-16 recommended). Never shown in messages',
    }),
  },
  { table: 'chap' },
);

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
};

/** Rules over the whole file. */
export const configRules: readonly ((v: object, r: RuleContext) => void)[] = [
  (_v, r) => checkChapSecretReuse(r.ctx),
];

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
  const { value, issues } = validate(configSchema, raw, env);
  return { config: value === undefined ? undefined : deepFreeze(value), issues };
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

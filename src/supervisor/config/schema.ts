/**
 * Hand-written validation of the YAML configuration (already parsed to plain JS values) into
 * a {@link SpindleConfig}. Every rule reports an issue with the exact path of the offending
 * value and validation carries on, so one run shows the operator every problem at once.
 *
 * No schema library: the rules are few, cross-field (sizes vs block size, LUNs vs devices,
 * FirstBurstLength vs MaxBurstLength) and their messages are part of the operator UX.
 *
 * Relative paths (stateDir, file backing paths) are resolved against the process working
 * directory at load time, so workers and logs only ever see absolute paths.
 */

import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type {
  AclEntry,
  AuthConfig,
  BackingConfig,
  ChapCredentials,
  DeviceConfig,
  IscsiTuning,
  PortalAluaState,
  PortalConfig,
  SpindleConfig,
  TargetConfig,
  WorkerCounts,
} from '../../shared/config-types.ts';
import { ALUA_STATE_NAMES } from '../../shared/config-types.ts';
import { parseSize, SizeError } from './sizes.ts';

// ---------------------------------------------------------------------------------------------
// Errors

/** One problem in a configuration. `path` is like `targets[0].portals[1]` ('' = the whole file). */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
  /** 1-based line in the source file, when it could be located. */
  readonly line?: number;
}

/** Stable error codes, for callers that branch on the kind of failure. */
export const ConfigErrorCode = {
  /** The YAML parsed but breaks one or more rules. */
  invalid: 'ERR_SPINDLE_CONFIG_INVALID',
  /** The text is not valid YAML (or has duplicate keys, several documents, ...). */
  syntax: 'ERR_SPINDLE_CONFIG_SYNTAX',
  /** The file could not be read. */
  unreadable: 'ERR_SPINDLE_CONFIG_UNREADABLE',
} as const;
export type ConfigErrorCode = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  /** File name (or other label) the configuration came from. */
  readonly source: string;
  readonly issues: readonly ConfigIssue[];

  constructor(
    code: ConfigErrorCode,
    source: string,
    issues: readonly ConfigIssue[],
    options?: { cause?: unknown },
  ) {
    super(formatIssues(source, issues), options);
    this.code = code;
    this.source = source;
    this.issues = issues;
  }
}

/** The error message: a header line, then one line per issue. */
export function formatIssues(source: string, issues: readonly ConfigIssue[]): string {
  const n = issues.length;
  const lines = [`invalid configuration in ${source} (${n} problem${n === 1 ? '' : 's'}):`];
  for (const issue of issues) {
    const where = issue.path === '' ? '(root)' : issue.path;
    const line = issue.line === undefined ? '' : ` (line ${issue.line})`;
    lines.push(`  ${where}: ${issue.message}${line}`);
  }
  return lines.join('\n');
}

export type PathSegment = string | number;

/** An issue before it is located in the source text. */
export interface RawIssue {
  readonly segments: readonly PathSegment[];
  readonly message: string;
}

/** `['targets', 0, 'portals', 1]` -> `targets[0].portals[1]`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Defaults and limits

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const CONFIG_DEFAULTS = {
  clusterId: 'spindle',
  stateDir: './.spindle',
  logLevel: 'info',
  blockSize: 512,
  writeCache: 'writeback',
  vendor: 'SPINDLE',
  product: 'VDISK',
  iscsi: {
    maxRecvDataSegmentLength: 262144,
    maxBurstLength: 1048576,
    firstBurstLength: 262144,
    maxOutstandingR2T: 1,
    maxTransferLength: 33554432,
    maxConnectionsPerPortal: 256,
    loginTimeoutSec: 15,
    nopIntervalSec: 30,
    nopTimeoutSec: 15,
    maxSessionsPerTarget: 256,
    authBackoffMaxSec: 30,
    immediateData: true,
    initialR2T: false,
    dataPDUInOrder: false,
    dataSequenceInOrder: false,
  },
  /** Default iSCSI port (RFC 7143 section 13: the IANA well-known port). */
  iscsiPort: 3260,
} as const;

export const LIMITS = {
  maxWorkers: 64,
  maxLun: 16383,
  /** RFC 7143 section 4.2.7.1: an iSCSI name is at most 223 bytes. */
  maxIscsiNameBytes: 223,
  /** RFC 7143 section 12.1.3: CHAP secrets shorter than 12 bytes must be refused. */
  minChapSecretBytes: 12,
  maxChapSecretBytes: 255,
  /** RFC 7143 MaxRecvDataSegmentLength / MaxBurstLength / FirstBurstLength range. */
  minSegment: 512,
  maxSegment: 16777215,
} as const;

/** Values the defaults depend on, injectable for tests. */
export interface ConfigEnv {
  readonly hostname: string;
  readonly cores: number;
  readonly cwd: string;
}

export function defaultEnv(): ConfigEnv {
  return { hostname: os.hostname(), cores: os.availableParallelism(), cwd: process.cwd() };
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

type Obj = Record<string, unknown>;
type At = readonly PathSegment[];

class Checker {
  readonly issues: RawIssue[] = [];
  /** Every CHAP secret seen, for the cross-direction reuse check (checkChapSecretReuse). */
  readonly chapSecrets: ChapSecretUse[] = [];
  report(at: At, message: string): void {
    this.issues.push({ segments: [...at], message });
  }
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// YAML writes an empty value (`auth:`) as null; for optional settings that means "not set".
function absent(v: unknown): v is undefined | null {
  return v === undefined || v === null;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      const cost = a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1;
      row[j] = Math.min(cur + 1, (row[j - 1] ?? 0) + 1, prev + cost);
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  // A truncated key ("maxBurst") is as likely a typo as a misspelt one.
  const prefixOf =
    key.length >= 4 ? known.find((k) => k.toLowerCase().startsWith(key.toLowerCase())) : undefined;
  if (prefixOf !== undefined) return `unknown key "${key}" (did you mean "${prefixOf}"?)`;
  let best: string | undefined;
  let bestDist = Infinity;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  if (best !== undefined && bestDist <= Math.max(1, Math.floor(best.length / 3))) {
    return `unknown key "${key}" (did you mean "${best}"?)`;
  }
  return `unknown key "${key}" (allowed: ${known.join(', ')})`;
}

/** A mapping whose keys must all be known; unknown keys are reported, never ignored. */
function mapping(ck: Checker, v: unknown, at: At, known: readonly string[]): Obj | undefined {
  if (!isObj(v)) {
    ck.report(at, `must be a mapping (with keys ${known.join(', ')}), got ${describe(v)}`);
    return undefined;
  }
  for (const key of Object.keys(v)) {
    if (!known.includes(key)) ck.report([...at, key], unknownKeyMessage(key, known));
  }
  return v;
}

function integer(ck: Checker, v: unknown, at: At, min: number, max: number): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    ck.report(at, `must be an integer ${min}-${max}, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function bool(ck: Checker, v: unknown, at: At): boolean | undefined {
  if (typeof v !== 'boolean') {
    ck.report(at, `must be true or false, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function oneOf<T extends string | number>(
  ck: Checker,
  v: unknown,
  at: At,
  allowed: readonly T[],
): T | undefined {
  if (!(allowed as readonly unknown[]).includes(v)) {
    ck.report(at, `must be one of ${allowed.join(', ')}, got ${describe(v)}`);
    return undefined;
  }
  return v as T;
}

function string(ck: Checker, v: unknown, at: At): string | undefined {
  if (typeof v !== 'string') {
    ck.report(at, `must be a string, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Printable ASCII of 1..max characters (SCSI INQUIRY / VPD text fields). */
function asciiField(ck: Checker, v: unknown, at: At, max: number): string | undefined {
  const s = string(ck, v, at);
  if (s === undefined) return undefined;
  if (s.length < 1 || s.length > max || !PRINTABLE_ASCII.test(s)) {
    ck.report(at, `must be 1-${max} printable ASCII characters, got ${JSON.stringify(s)}`);
    return undefined;
  }
  return s;
}

function size(ck: Checker, v: unknown, at: At): number | undefined {
  try {
    return parseSize(v);
  } catch (err) {
    if (!(err instanceof SizeError)) throw err;
    ck.report(at, err.message);
    return undefined;
  }
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// Control characters (C0, DEL, C1) have no business in names, aliases or CHAP user names.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

// ---------------------------------------------------------------------------------------------
// Specific rules

const ID_RE = /^[A-Za-z0-9_.-]+$/;
const DEVICE_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** Why `name` is not a valid iSCSI name (RFC 7143 section 4.2.7), or undefined when it is. */
export function iscsiNameProblem(name: string): string | undefined {
  const example = 'e.g. iqn.2026-11.io.spindle:demo';
  if (byteLength(name) > LIMITS.maxIscsiNameBytes) {
    return `iSCSI name is ${byteLength(name)} bytes; at most ${LIMITS.maxIscsiNameBytes} are allowed`;
  }
  const lower = name.toLowerCase();
  if (lower.startsWith('iqn.')) {
    if (name !== lower) return `iqn. names must be lowercase (${JSON.stringify(lower)})`;
    // iqn.yyyy-mm.reversed.domain[:identifier]. The identifier may use the characters
    // RFC 3722 stringprep leaves in a name; we accept its ASCII subset (a-z 0-9 - . :).
    const m =
      /^iqn\.(\d{4})-(\d{2})\.([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::([a-z0-9.:-]+))?$/.exec(
        name,
      );
    if (m === null) {
      return `invalid iqn name ${JSON.stringify(name)}: expected iqn.yyyy-mm.reversed.domain[:identifier] using a-z, 0-9, "-", "." and ":" (${example})`;
    }
    const month = Number(m[2]);
    if (month < 1 || month > 12) return `invalid iqn name ${JSON.stringify(name)}: month must be 01-12`;
    return undefined;
  }
  if (lower.startsWith('eui.')) {
    if (!/^eui\.[0-9a-f]{16}$/i.test(name)) {
      return `invalid eui name ${JSON.stringify(name)}: expected "eui." and 16 hex digits`;
    }
    return undefined;
  }
  if (lower.startsWith('naa.')) {
    if (!/^naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})$/i.test(name)) {
      return `invalid naa name ${JSON.stringify(name)}: expected "naa." and 16 or 32 hex digits`;
    }
    return undefined;
  }
  return `invalid iSCSI name ${JSON.stringify(name)}: must start with iqn., eui. or naa. (${example})`;
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses "host:port" or "[ipv6]:port"; without ":port" the port is 3260.
 * Returns the portal or a message.
 */
export function parsePortal(text: string): PortalConfig | string {
  const usage = 'portal must be "host:port", e.g. "127.0.0.1:3260" or "[::1]:3260"';
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
    if (m === null) return usage;
    host = m[1] ?? '';
    portText = m[2];
    if (!net.isIPv6(host)) return `${JSON.stringify(host)} in brackets is not an IPv6 address`;
  } else {
    // A bare IPv6 address is refused even without a port: "::1:3260" is itself a valid
    // address, so the operator's intent cannot be told apart.
    const colon = s.lastIndexOf(':');
    if (colon >= 0 && s.indexOf(':') !== colon) {
      return `IPv6 addresses must be in brackets, e.g. "[::1]:3260" or "[::1]"`;
    }
    host = colon >= 0 ? s.slice(0, colon) : s;
    portText = colon >= 0 ? s.slice(colon + 1) : undefined;
    if (host === '') return usage;
    if (!net.isIPv4(host) && !HOSTNAME_RE.test(host)) {
      return `${JSON.stringify(host)} is not an IP address or host name`;
    }
    host = host.toLowerCase();
  }
  let port: number = CONFIG_DEFAULTS.iscsiPort;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) return 'port must be an integer 1-65535';
  }
  return { host, port };
}

/** A key identifying the socket address, so "::1" and "0:0:0:0:0:0:0:1" compare equal. */
export function portalKey(p: PortalConfig): string {
  const host = net.isIPv6(p.host) ? new URL(`http://[${p.host}]/`).hostname : p.host;
  return `${host}|${p.port}`;
}

/** "host:port", IPv6 in brackets, as the operator writes it. */
export function displayPortal(p: PortalConfig): string {
  return net.isIPv6(p.host) ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}

function chap(ck: Checker, v: unknown, at: At): ChapCredentials | undefined {
  const o = mapping(ck, v, at, ['user', 'secret']);
  if (o === undefined) return undefined;
  let user: string | undefined;
  if (absent(o['user'])) ck.report([...at, 'user'], 'CHAP user name is required');
  else {
    user = string(ck, o['user'], [...at, 'user']);
    if (user !== undefined && (user.length === 0 || byteLength(user) > 255 || CONTROL_CHARS.test(user))) {
      ck.report([...at, 'user'], 'CHAP user name must be 1-255 bytes without control characters');
      user = undefined;
    }
  }
  let secret: string | undefined;
  const rawSecret = o['secret'];
  if (absent(rawSecret)) ck.report([...at, 'secret'], 'CHAP secret is required');
  else if (typeof rawSecret !== 'string') {
    // Never echo the value: it is a secret.
    ck.report([...at, 'secret'], `CHAP secret must be a string (quote it), got a ${typeof rawSecret}`);
  } else {
    const n = byteLength(rawSecret);
    if (n < LIMITS.minChapSecretBytes) {
      ck.report(
        [...at, 'secret'],
        `CHAP secret is ${n} bytes; RFC 7143 section 12.1.3 requires at least ${LIMITS.minChapSecretBytes} (12-16 recommended)`,
      );
    } else if (n > LIMITS.maxChapSecretBytes) {
      ck.report(
        [...at, 'secret'],
        `CHAP secret is ${n} bytes; at most ${LIMITS.maxChapSecretBytes} are allowed`,
      );
    } else secret = rawSecret;
  }
  return user !== undefined && secret !== undefined ? { user, secret } : undefined;
}

function auth(ck: Checker, v: unknown, at: At): AuthConfig | undefined {
  if (absent(v)) return undefined;
  const o = mapping(ck, v, at, ['chap', 'mutualChap']);
  if (o === undefined) return undefined;
  const before = ck.issues.length;
  const c = absent(o['chap']) ? undefined : chap(ck, o['chap'], [...at, 'chap']);
  let m: ChapCredentials | undefined;
  if (!absent(o['mutualChap'])) {
    m = chap(ck, o['mutualChap'], [...at, 'mutualChap']);
    // RFC 7143 12.1.3: the initiator challenges the target inside the CHAP exchange the
    // target started, so mutual CHAP cannot exist without one-way CHAP.
    if (absent(o['chap'])) {
      ck.report(
        [...at, 'mutualChap'],
        'mutualChap requires chap: the initiator can only challenge the target during a CHAP login (RFC 7143 section 12.1.3)',
      );
    }
  }
  if (c !== undefined)
    ck.chapSecrets.push({ at: [...at, 'chap', 'secret'], secret: c.secret, role: 'initiator' });
  if (m !== undefined)
    ck.chapSecrets.push({ at: [...at, 'mutualChap', 'secret'], secret: m.secret, role: 'target' });
  if (ck.issues.length !== before) return undefined;
  return { ...(c === undefined ? {} : { chap: c }), ...(m === undefined ? {} : { mutualChap: m }) };
}

/** Where a CHAP secret is configured, and which side it authenticates. */
interface ChapSecretUse {
  readonly at: At;
  readonly secret: string;
  /** `chap` authenticates initiators; `mutualChap` authenticates the target. */
  readonly role: 'initiator' | 'target';
}

/**
 * RFC 7143 section 9.2.1: a CHAP secret used to authenticate initiators must not be
 * configured to authenticate a target (or the reverse); otherwise an attacker can reflect
 * one side's challenge to the other and get it answered. Checked across the whole file,
 * discovery included. The secrets themselves are never echoed.
 */
function checkChapSecretReuse(ck: Checker): void {
  const initiatorSecrets = ck.chapSecrets.filter((u) => u.role === 'initiator');
  for (const t of ck.chapSecrets) {
    if (t.role !== 'target') continue;
    const clash = initiatorSecrets.find((i) => i.secret === t.secret);
    if (clash === undefined) continue;
    ck.report(
      t.at,
      `must differ from the secret at ${formatPath(clash.at)}: RFC 7143 section 9.2.1 forbids using one CHAP secret in both directions (initiator and target authentication)`,
    );
  }
}

function workers(ck: Checker, v: unknown, env: ConfigEnv): WorkerCounts {
  const def = Math.min(LIMITS.maxWorkers, Math.max(1, Math.floor(env.cores)));
  const out = { session: def, lun: def };
  if (absent(v)) return out;
  const o = mapping(ck, v, ['workers'], ['session', 'lun']);
  if (o === undefined) return out;
  for (const k of ['session', 'lun'] as const) {
    if (!absent(o[k])) out[k] = integer(ck, o[k], ['workers', k], 1, LIMITS.maxWorkers) ?? def;
  }
  return out;
}

function iscsi(ck: Checker, v: unknown): IscsiTuning {
  const d = CONFIG_DEFAULTS.iscsi;
  const keys = Object.keys(d);
  const o = absent(v) ? {} : (mapping(ck, v, ['iscsi'], keys) ?? {});
  const at = (k: string): At => ['iscsi', k];
  const bytes = (k: string, min: number, max: number, what: string): number | undefined => {
    const raw = o[k];
    if (absent(raw)) return undefined;
    const n = size(ck, raw, at(k));
    if (n !== undefined && (n < min || n > max)) {
      ck.report(at(k), `must be ${min}-${max} bytes${what}, got ${n}`);
      return undefined;
    }
    return n;
  };
  const count = (k: string, min: number, max: number): number | undefined =>
    absent(o[k]) ? undefined : integer(ck, o[k], at(k), min, max);
  const flag = (k: string): boolean | undefined => (absent(o[k]) ? undefined : bool(ck, o[k], at(k)));

  const rfc = ' (RFC 7143 section 13)';
  const maxRecvDataSegmentLength =
    bytes('maxRecvDataSegmentLength', LIMITS.minSegment, LIMITS.maxSegment, rfc) ??
    d.maxRecvDataSegmentLength;
  const mbl = bytes('maxBurstLength', LIMITS.minSegment, LIMITS.maxSegment, rfc);
  const maxBurstLength = mbl ?? d.maxBurstLength;
  // FirstBurstLength may not exceed MaxBurstLength; shrink the default with it.
  let firstBurstLength = Math.min(d.firstBurstLength, maxBurstLength);
  const fbl = bytes('firstBurstLength', LIMITS.minSegment, LIMITS.maxSegment, rfc);
  if (fbl !== undefined) {
    if (fbl > maxBurstLength) {
      ck.report(
        at('firstBurstLength'),
        `must not exceed maxBurstLength (${maxBurstLength}) (RFC 7143 section 13.14), got ${fbl}`,
      );
    } else firstBurstLength = fbl;
  }
  let maxTransferLength: number = d.maxTransferLength;
  const mtl = bytes('maxTransferLength', 4096, 2 ** 30, '');
  if (mtl !== undefined) {
    // A whole number of blocks for either block size, as the Block Limits VPD reports it in blocks.
    if (mtl % 4096 !== 0) ck.report(at('maxTransferLength'), `must be a multiple of 4096, got ${mtl}`);
    else maxTransferLength = mtl;
  }
  return {
    maxRecvDataSegmentLength,
    maxBurstLength,
    firstBurstLength,
    maxOutstandingR2T: count('maxOutstandingR2T', 1, 65535) ?? d.maxOutstandingR2T,
    maxTransferLength,
    maxConnectionsPerPortal: count('maxConnectionsPerPortal', 1, 65535) ?? d.maxConnectionsPerPortal,
    loginTimeoutSec: count('loginTimeoutSec', 1, 3600) ?? d.loginTimeoutSec,
    // Target NOP-In pings (RFC 7143 11.19): 0 disables them.
    nopIntervalSec: count('nopIntervalSec', 0, 3600) ?? d.nopIntervalSec,
    nopTimeoutSec: count('nopTimeoutSec', 1, 3600) ?? d.nopTimeoutSec,
    maxSessionsPerTarget: count('maxSessionsPerTarget', 1, 65535) ?? d.maxSessionsPerTarget,
    // Failed-authentication backoff cap (auth-throttle.ts): 0 disables the throttle.
    authBackoffMaxSec: count('authBackoffMaxSec', 0, 3600) ?? d.authBackoffMaxSec,
    // The target's own ImmediateData / InitialR2T values (RFC 7143 13.10, 13.11).
    immediateData: (absent(o['immediateData']) ? undefined : bool(ck, o['immediateData'], at('immediateData'))) ?? d.immediateData,
    initialR2T: (absent(o['initialR2T']) ? undefined : bool(ck, o['initialR2T'], at('initialR2T'))) ?? d.initialR2T,
    // The target's DataPDUInOrder / DataSequenceInOrder values (RFC 7143 13.18, 13.19).
    dataPDUInOrder: flag('dataPDUInOrder') ?? d.dataPDUInOrder,
    dataSequenceInOrder: flag('dataSequenceInOrder') ?? d.dataSequenceInOrder,
  };
}

const DEVICE_KEYS = [
  'name',
  'ram',
  'file',
  'blockSize',
  'readOnly',
  'thin',
  'removable',
  'physicalBlockSize',
  'writeCache',
  'queueDepth',
  'serial',
  'vendor',
  'product',
] as const;

/** physicalBlockSize values: powers of two, 512 B to 64 KiB. */
const PHYSICAL_BLOCK_SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] as const;

function device(ck: Checker, v: unknown, at: At, env: ConfigEnv): DeviceConfig | undefined {
  const o = mapping(ck, v, at, DEVICE_KEYS);
  if (o === undefined) return undefined;
  let ok = true;
  const need = <T>(x: T | undefined): T | undefined => {
    if (x === undefined) ok = false;
    return x;
  };

  let name: string | undefined;
  if (absent(o['name'])) {
    ck.report([...at, 'name'], 'device name is required');
    ok = false;
  } else {
    name = need(string(ck, o['name'], [...at, 'name']));
    if (name !== undefined && !DEVICE_NAME_RE.test(name)) {
      ck.report(
        [...at, 'name'],
        `must be 1-64 characters from A-Z a-z 0-9 _ . -, got ${JSON.stringify(name)}`,
      );
      name = undefined;
      ok = false;
    }
  }

  const blockSize = absent(o['blockSize'])
    ? CONFIG_DEFAULTS.blockSize
    : need(oneOf(ck, o['blockSize'], [...at, 'blockSize'], [512, 4096] as const));

  const checkMultiple = (bytes: number | undefined, sizeAt: At): number | undefined => {
    if (bytes !== undefined && blockSize !== undefined && bytes % blockSize !== 0) {
      ck.report(sizeAt, `size ${bytes} bytes is not a multiple of the block size (${blockSize})`);
      return undefined;
    }
    return bytes;
  };

  let backing: BackingConfig | undefined;
  const hasRam = !absent(o['ram']);
  const hasFile = !absent(o['file']);
  if (hasRam === hasFile) {
    ck.report(at, hasRam ? 'ram and file are mutually exclusive' : 'exactly one of ram or file is required');
    ok = false;
  } else if (hasRam) {
    const rat = [...at, 'ram'];
    const r = mapping(ck, o['ram'], rat, ['size']);
    if (r === undefined) ok = false;
    else if (absent(r['size'])) {
      ck.report([...rat, 'size'], 'size is required, e.g. 1GiB');
      ok = false;
    } else {
      const bytes = need(checkMultiple(size(ck, r['size'], [...rat, 'size']), [...rat, 'size']));
      if (bytes !== undefined) backing = { type: 'ram', size: bytes };
    }
  } else {
    const fat = [...at, 'file'];
    const f = mapping(ck, o['file'], fat, ['path', 'size']);
    if (f === undefined) ok = false;
    else {
      let p: string | undefined;
      if (absent(f['path'])) {
        ck.report([...fat, 'path'], 'path of the backing file is required');
        ok = false;
      } else {
        p = need(string(ck, f['path'], [...fat, 'path']));
        if (p !== undefined && (p === '' || p.includes('\0'))) {
          ck.report([...fat, 'path'], 'must be a non-empty file path');
          p = undefined;
          ok = false;
        }
      }
      let bytes: number | undefined;
      if (absent(f['size'])) {
        ck.report([...fat, 'size'], 'size is required: the file is created or extended to this size');
        ok = false;
      } else {
        bytes = need(checkMultiple(size(ck, f['size'], [...fat, 'size']), [...fat, 'size']));
      }
      if (p !== undefined && bytes !== undefined) {
        backing = { type: 'file', path: path.resolve(env.cwd, p), size: bytes };
      }
    }
  }

  const readOnly = absent(o['readOnly']) ? false : need(bool(ck, o['readOnly'], [...at, 'readOnly']));
  // Logical block provisioning (SBC-4 4.7): thin = UNMAP, WRITE SAME UNMAP, GET LBA STATUS.
  const thin = absent(o['thin']) ? false : need(bool(ck, o['thin'], [...at, 'thin']));
  // Removable medium (SPC-4 6.6.2 RMB): START STOP UNIT can eject and load it.
  const removable = absent(o['removable']) ? false : need(bool(ck, o['removable'], [...at, 'removable']));
  // Physical block size: reported as LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (SBC-4 5.21.2),
  // so a power of two from the logical block size up to 2^15 logical blocks (4 bits).
  let physicalBlockSize: number | undefined;
  if (!absent(o['physicalBlockSize'])) {
    const pat = [...at, 'physicalBlockSize'];
    physicalBlockSize = need(oneOf(ck, o['physicalBlockSize'], pat, PHYSICAL_BLOCK_SIZES));
    if (physicalBlockSize !== undefined && blockSize !== undefined && physicalBlockSize < blockSize) {
      ck.report(pat, `must be at least the logical block size (${blockSize}), got ${physicalBlockSize}`);
      physicalBlockSize = undefined;
      ok = false;
    }
  }
  const writeCache = absent(o['writeCache'])
    ? CONFIG_DEFAULTS.writeCache
    : need(oneOf(ck, o['writeCache'], [...at, 'writeCache'], ['writethrough', 'writeback'] as const));
  // Per-LU task set capacity (SAM-5 5.3.2): beyond it TASK SET FULL or BUSY.
  const queueDepth = absent(o['queueDepth'])
    ? undefined
    : need(integer(ck, o['queueDepth'], [...at, 'queueDepth'], 1, 65536));
  const serial = absent(o['serial']) ? undefined : need(asciiField(ck, o['serial'], [...at, 'serial'], 32));
  const vendor = absent(o['vendor'])
    ? CONFIG_DEFAULTS.vendor
    : need(asciiField(ck, o['vendor'], [...at, 'vendor'], 8));
  const product = absent(o['product'])
    ? CONFIG_DEFAULTS.product
    : need(asciiField(ck, o['product'], [...at, 'product'], 16));

  if (
    !ok ||
    name === undefined ||
    backing === undefined ||
    blockSize === undefined ||
    readOnly === undefined ||
    thin === undefined ||
    removable === undefined ||
    writeCache === undefined ||
    vendor === undefined ||
    product === undefined
  ) {
    return undefined;
  }
  return {
    name,
    backing,
    blockSize,
    readOnly,
    // Omitted when false: absent means fully provisioned / not removable.
    ...(thin ? { thin } : {}),
    ...(removable ? { removable } : {}),
    ...(physicalBlockSize === undefined ? {} : { physicalBlockSize }),
    writeCache,
    ...(queueDepth === undefined ? {} : { queueDepth }),
    ...(serial === undefined ? {} : { serial }),
    vendor,
    product,
  };
}

function target(ck: Checker, v: unknown, at: At, deviceNames: ReadonlySet<string>): TargetConfig | undefined {
  const o = mapping(ck, v, at, ['iqn', 'alias', 'portals', 'luns', 'auth', 'acls', 'defaultAccess']);
  if (o === undefined) return undefined;
  const before = ck.issues.length;

  let iqn: string | undefined;
  if (absent(o['iqn'])) ck.report([...at, 'iqn'], 'iqn is required, e.g. iqn.2026-11.io.spindle:demo');
  else {
    iqn = string(ck, o['iqn'], [...at, 'iqn']);
    const problem = iqn === undefined ? undefined : iscsiNameProblem(iqn);
    if (problem !== undefined) ck.report([...at, 'iqn'], problem);
  }

  let alias: string | undefined;
  if (!absent(o['alias'])) {
    alias = string(ck, o['alias'], [...at, 'alias']);
    if (alias !== undefined && (alias === '' || byteLength(alias) > 255 || CONTROL_CHARS.test(alias))) {
      ck.report([...at, 'alias'], 'alias must be 1-255 bytes without control characters');
    }
  }

  const portals: PortalConfig[] = [];
  const pat = [...at, 'portals'];
  if (absent(o['portals'])) ck.report(pat, 'at least one portal is required, e.g. ["127.0.0.1:3260"]');
  else if (!Array.isArray(o['portals']))
    ck.report(pat, `must be a list of "host:port" strings, got ${describe(o['portals'])}`);
  else if (o['portals'].length === 0)
    ck.report(pat, 'at least one portal is required, e.g. ["127.0.0.1:3260"]');
  else {
    const seen = new Map<string, number>();
    o['portals'].forEach((raw: unknown, i: number) => {
      if (typeof raw !== 'string') {
        ck.report([...pat, i], `portal must be a string "host:port", got ${describe(raw)}`);
        return;
      }
      const p = parsePortal(raw);
      if (typeof p === 'string') {
        ck.report([...pat, i], p);
        return;
      }
      const key = portalKey(p);
      const first = seen.get(key);
      if (first !== undefined) {
        ck.report([...pat, i], `duplicate portal ${displayPortal(p)} (same as portals[${first}])`);
        return;
      }
      seen.set(key, i);
      portals.push(p);
    });
  }

  const lat = [...at, 'luns'];
  // With ACLs the target's own map serves only `defaultAccess: allow`; it may be omitted.
  const luns = !absent(o['acls']) && absent(o['luns']) ? {} : lunMap(ck, o['luns'], lat, deviceNames, 'target');

  const a = auth(ck, o['auth'], [...at, 'auth']);
  const access = targetAccess(ck, o, at, deviceNames, Object.keys(luns).length > 0);
  if (ck.issues.length !== before || iqn === undefined) return undefined;
  return {
    iqn,
    ...(alias === undefined ? {} : { alias }),
    portals,
    luns,
    ...(a === undefined ? {} : { auth: a }),
    ...access,
  };
}

/** A LUN map `{ <lun>: <device> }` (targets[].luns, targets[].acls[].luns). */
function lunMap(
  ck: Checker,
  lunsRaw: unknown,
  lat: At,
  deviceNames: ReadonlySet<string>,
  owner: 'target' | 'ACL entry',
): Record<number, string> {
  const luns: Record<number, string> = {};
  if (absent(lunsRaw)) ck.report(lat, 'at least one LUN is required, e.g. { 0: ram0 }');
  else if (!isObj(lunsRaw)) {
    ck.report(
      lat,
      `must be a mapping of LUN number to device name, e.g. { 0: ram0 }, got ${describe(lunsRaw)}`,
    );
  } else if (Object.keys(lunsRaw).length === 0) {
    ck.report(lat, 'at least one LUN is required, e.g. { 0: ram0 }');
  } else {
    const usedBy = new Map<string, number>();
    for (const [key, dev] of Object.entries(lunsRaw)) {
      const kat = [...lat, key];
      const lun = /^\d{1,5}$/.test(key) ? Number(key) : NaN;
      if (!(lun >= 0 && lun <= LIMITS.maxLun)) {
        ck.report(kat, `LUN number must be an integer 0-${LIMITS.maxLun}, got ${JSON.stringify(key)}`);
        continue;
      }
      if (typeof dev !== 'string') {
        ck.report(kat, `must be the name of a device, got ${describe(dev)}`);
        continue;
      }
      if (!deviceNames.has(dev)) {
        const known = [...deviceNames].join(', ') || 'none';
        ck.report(kat, `unknown device "${dev}" (devices: ${known})`);
        continue;
      }
      const other = usedBy.get(dev);
      if (other !== undefined) {
        ck.report(kat, `device "${dev}" is already LUN ${other} of this ${owner}`);
        continue;
      }
      usedBy.set(dev, lun);
      luns[lun] = dev;
    }
  }
  return luns;
}

// ---------------------------------------------------------------------------------------------
// LUN masking: targets[].acls and targets[].defaultAccess (issue 5)

/** The characters of iSCSI names (iqn., eui., naa. forms) plus the `*` wildcard. */
const INITIATOR_PATTERN_RE = /^[A-Za-z0-9.:*-]+$/;

/**
 * Why `pattern` cannot select initiators, or undefined when it can. Without `*` it must
 * be a valid iSCSI name (RFC 7143 section 4.2.7); with `*` (any run of characters) it may
 * use only the characters of iSCSI names, e.g. "iqn.1994-05.com.redhat:*".
 */
export function initiatorPatternProblem(pattern: string): string | undefined {
  if (!pattern.includes('*')) return iscsiNameProblem(pattern);
  if (byteLength(pattern) > LIMITS.maxIscsiNameBytes) {
    return `pattern is ${byteLength(pattern)} bytes; at most ${LIMITS.maxIscsiNameBytes} are allowed`;
  }
  if (!INITIATOR_PATTERN_RE.test(pattern)) {
    return `invalid initiator pattern ${JSON.stringify(pattern)}: use the characters of iSCSI names (a-z 0-9 . : -) and "*", e.g. "iqn.1994-05.com.redhat:*"`;
  }
  return undefined;
}

/** targets[i].acls and targets[i].defaultAccess; `hasLuns`: the target's own map is non-empty. */
function targetAccess(
  ck: Checker,
  o: Obj,
  at: At,
  deviceNames: ReadonlySet<string>,
  hasLuns: boolean,
): { acls?: readonly AclEntry[]; defaultAccess?: 'allow' | 'deny' } {
  const dat = [...at, 'defaultAccess'];
  const given = absent(o['defaultAccess']) ? undefined : oneOf(ck, o['defaultAccess'], dat, ['allow', 'deny'] as const);
  const rawAcls = o['acls'];
  if (absent(rawAcls)) return given === undefined ? {} : { defaultAccess: given };
  const aat = [...at, 'acls'];
  if (!Array.isArray(rawAcls)) {
    ck.report(aat, `must be a list of { initiator, luns } entries, got ${describe(rawAcls)}`);
    return {};
  }
  if (rawAcls.length === 0) ck.report(aat, 'at least one entry is required (without acls every initiator sees luns)');
  // Lower-cased name or pattern -> path of the entry that has it: one entry per initiator.
  const seen = new Map<string, string>();
  const acls: AclEntry[] = [];
  rawAcls.forEach((raw: unknown, i: number) => {
    const e = aclEntry(ck, raw, [...aat, i], deviceNames, seen);
    if (e !== undefined) acls.push(e);
  });
  // With ACLs an initiator no entry names is refused unless the operator says otherwise.
  const defaultAccess = given ?? 'deny';
  if (defaultAccess === 'allow' && !hasLuns) {
    ck.report(
      [...at, 'luns'],
      'defaultAccess: allow shows the target\'s luns to initiators matching no ACL entry: at least one LUN is required, e.g. { 0: ram0 }',
    );
  }
  return { acls, defaultAccess };
}

/** One targets[i].acls[j] entry: `initiator` or `initiators`, `luns`, optional `auth`. */
function aclEntry(
  ck: Checker,
  v: unknown,
  at: At,
  deviceNames: ReadonlySet<string>,
  seen: Map<string, string>,
): AclEntry | undefined {
  const o = mapping(ck, v, at, ['initiator', 'initiators', 'luns', 'auth']);
  if (o === undefined) return undefined;
  const before = ck.issues.length;
  const names: Array<[unknown, At]> = [];
  if (absent(o['initiator']) && absent(o['initiators'])) {
    ck.report([...at, 'initiator'], 'initiator is required: an iSCSI name or a pattern such as "iqn.1994-05.com.redhat:*" (or initiators: [...])');
  } else if (!absent(o['initiator']) && !absent(o['initiators'])) {
    ck.report([...at, 'initiators'], 'give either initiator or initiators, not both');
  } else if (!absent(o['initiator'])) {
    names.push([o['initiator'], [...at, 'initiator']]);
  } else {
    const iat = [...at, 'initiators'];
    const list = o['initiators'];
    if (!Array.isArray(list)) ck.report(iat, `must be a list of iSCSI names or patterns, got ${describe(list)}`);
    else if (list.length === 0) ck.report(iat, 'at least one iSCSI name or pattern is required');
    else list.forEach((n: unknown, k: number) => names.push([n, [...iat, k]]));
  }
  const initiators: string[] = [];
  for (const [raw, nat] of names) {
    const name = string(ck, raw, nat);
    if (name === undefined) continue;
    const problem = initiatorPatternProblem(name);
    if (problem !== undefined) {
      ck.report(nat, problem);
      continue;
    }
    // RFC 7143 4.2.7.2: iSCSI names compare case-insensitively.
    const key = name.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      ck.report(nat, `${JSON.stringify(name)} is already listed at ${first}`);
      continue;
    }
    seen.set(key, formatPath(nat));
    initiators.push(name);
  }
  const luns = lunMap(ck, o['luns'], [...at, 'luns'], deviceNames, 'ACL entry');
  const a = auth(ck, o['auth'], [...at, 'auth']);
  if (ck.issues.length !== before) return undefined;
  return { initiators, luns, ...(a === undefined ? {} : { auth: a }) };
}

function idString(ck: Checker, v: unknown, at: At, fallback: string, max: number): string {
  if (absent(v)) return fallback;
  const s = string(ck, v, at);
  if (s === undefined) return fallback;
  if (s.length < 1 || s.length > max || !ID_RE.test(s)) {
    ck.report(at, `must be 1-${max} characters from A-Z a-z 0-9 _ . -, got ${JSON.stringify(s)}`);
  }
  return s;
}

function list(ck: Checker, v: unknown, at: At): readonly unknown[] {
  if (absent(v)) return [];
  if (!Array.isArray(v)) {
    ck.report(at, `must be a list, got ${describe(v)}`);
    return [];
  }
  return v;
}

/**
 * `aluaStates: { "host:port": state }`: the asymmetric access state of each portal's
 * target port group (SPC-4 5.16.2.4). Every key must be a portal some target listens on.
 */
function aluaStates(ck: Checker, v: unknown, targets: readonly TargetConfig[]): PortalAluaState[] {
  if (absent(v)) return [];
  const at: At = ['aluaStates'];
  if (!isObj(v)) {
    ck.report(at, `must be a mapping of "host:port" to a state (${ALUA_STATE_NAMES.join(', ')}), got ${describe(v)}`);
    return [];
  }
  const known = new Set(targets.flatMap((t) => t.portals.map(portalKey)));
  const out: PortalAluaState[] = [];
  const seen = new Map<string, string>();
  for (const [key, raw] of Object.entries(v)) {
    const kat = [...at, key];
    const p = parsePortal(key);
    if (typeof p === 'string') {
      ck.report(kat, p);
      continue;
    }
    const pk = portalKey(p);
    if (!known.has(pk)) {
      ck.report(kat, `no target listens on ${displayPortal(p)}: an ALUA state needs one of the targets' portals`);
      continue;
    }
    const first = seen.get(pk);
    if (first !== undefined) {
      ck.report(kat, `duplicate portal (same as "${first}")`);
      continue;
    }
    seen.set(pk, key);
    const state = oneOf(ck, raw, kat, ALUA_STATE_NAMES);
    if (state !== undefined) out.push({ portal: p, state });
  }
  return out;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

const TOP_KEYS = [
  'clusterId',
  'nodeId',
  'stateDir',
  'workers',
  'logging',
  'iscsi',
  'devices',
  'targets',
  'discovery',
  'aluaStates',
] as const;

/**
 * Validates parsed YAML. Returns the config (deep-frozen) only when there are no issues.
 */
export function validateConfig(
  raw: unknown,
  env: ConfigEnv = defaultEnv(),
): { config: SpindleConfig | undefined; issues: readonly RawIssue[] } {
  const ck = new Checker();
  if (absent(raw)) {
    ck.report([], 'the configuration is empty: expected a mapping with devices and targets');
    return { config: undefined, issues: ck.issues };
  }
  const o = mapping(ck, raw, [], TOP_KEYS);
  if (o === undefined) return { config: undefined, issues: ck.issues };

  const clusterId = idString(ck, o['clusterId'], ['clusterId'], CONFIG_DEFAULTS.clusterId, 64);
  const nodeId = idString(ck, o['nodeId'], ['nodeId'], env.hostname, 253);
  if (absent(o['nodeId']) && !(ID_RE.test(nodeId) && nodeId.length <= 253)) {
    ck.report(['nodeId'], `the host name ${JSON.stringify(nodeId)} is not a valid node id; set nodeId`);
  }

  let stateDir = path.resolve(env.cwd, CONFIG_DEFAULTS.stateDir);
  if (!absent(o['stateDir'])) {
    const s = string(ck, o['stateDir'], ['stateDir']);
    if (s !== undefined) {
      if (s === '' || s.includes('\0')) ck.report(['stateDir'], 'must be a non-empty directory path');
      else stateDir = path.resolve(env.cwd, s);
    }
  }

  let level: LogLevel = CONFIG_DEFAULTS.logLevel;
  if (!absent(o['logging'])) {
    const lg = mapping(ck, o['logging'], ['logging'], ['level']);
    if (lg !== undefined && !absent(lg['level'])) {
      level = oneOf(ck, lg['level'], ['logging', 'level'], LOG_LEVELS) ?? level;
    }
  }

  const workerCounts = workers(ck, o['workers'], env);
  const tuning = iscsi(ck, o['iscsi']);

  const devices: DeviceConfig[] = [];
  // Names of every device entry with a well-formed name, valid or not, so a target referring
  // to a device that has some other mistake gets no misleading "unknown device" issue.
  const deviceNames = new Set<string>();
  const firstIndex = new Map<string, number>();
  list(ck, o['devices'], ['devices']).forEach((d, i) => {
    const at = ['devices', i];
    const dev = device(ck, d, at, env);
    const name = isObj(d) && typeof d['name'] === 'string' ? d['name'] : undefined;
    if (name !== undefined && DEVICE_NAME_RE.test(name)) {
      const first = firstIndex.get(name);
      if (first !== undefined) {
        ck.report([...at, 'name'], `duplicate device name "${name}" (also devices[${first}])`);
        return;
      }
      firstIndex.set(name, i);
      deviceNames.add(name);
    }
    if (dev !== undefined) devices.push(dev);
  });

  const targets: TargetConfig[] = [];
  const iqnIndex = new Map<string, number>();
  list(ck, o['targets'], ['targets']).forEach((t, i) => {
    const at = ['targets', i];
    const tc = target(ck, t, at, deviceNames);
    const iqn = isObj(t) && typeof t['iqn'] === 'string' ? t['iqn'].toLowerCase() : undefined;
    if (iqn !== undefined) {
      const first = iqnIndex.get(iqn);
      if (first !== undefined) {
        ck.report([...at, 'iqn'], `duplicate target name (also targets[${first}])`);
        return;
      }
      iqnIndex.set(iqn, i);
    }
    if (tc !== undefined) targets.push(tc);
  });

  let discovery: { auth?: AuthConfig } = {};
  if (!absent(o['discovery'])) {
    const dsc = mapping(ck, o['discovery'], ['discovery'], ['auth']);
    const a = dsc === undefined ? undefined : auth(ck, dsc['auth'], ['discovery', 'auth']);
    if (a !== undefined) discovery = { auth: a };
  }

  const alua = aluaStates(ck, o['aluaStates'], targets);

  checkChapSecretReuse(ck);
  if (ck.issues.length > 0) return { config: undefined, issues: ck.issues };
  const config: SpindleConfig = {
    clusterId,
    nodeId,
    devices,
    targets,
    workers: workerCounts,
    iscsi: tuning,
    discovery,
    logging: { level },
    stateDir,
    aluaStates: alua,
  };
  return { config: deepFreeze(config), issues: [] };
}

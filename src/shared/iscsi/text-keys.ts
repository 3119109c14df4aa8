/**
 * iSCSI text data: key=value pairs, each followed by one NUL (RFC 7143 section 6.1).
 *
 * Used by Login and Text Request/Response PDUs. The parser is written for hostile input:
 * it never throws, bounds the total size, and reports the first problem as a value so the
 * caller can answer with a Login reject (RFC 7143 11.13.5, initiator error) instead of
 * crashing the session worker.
 *
 *   data segment:  K e y = v a l u e \0 K e y 2 = v a l \0 ...
 *                  |<-- key -->|   |<- value ->|
 *                  <= 63 bytes      <= 8192 bytes (<= 255 for most keys: see negotiation)
 *
 * Pure: no I/O, no logging.
 */
import { isUtf8 } from 'node:buffer';

/** Size limits from RFC 7143 6.1 (and 13 for names). */
export const TextLimits = {
  /** RFC 7143 6.1: a key-name must not exceed 63 characters. */
  KEY_MAX_BYTES: 63,
  /**
   * Largest single value the parser accepts. RFC 7143 6.1: implementations must accept at
   * least 8192 bytes of key=value data in one negotiation; no single value can be longer.
   */
  VALUE_MAX_BYTES: 8192,
  /** RFC 7143 6.1: default maximum length of a simple-value (not its encoding). */
  SIMPLE_VALUE_MAX_BYTES: 255,
  /** RFC 7143 4.2.7.1 (iSCSI names): at most 223 bytes. */
  NAME_MAX_BYTES: 223,
  /** Default bound on the text accumulated over one negotiation sequence (C bit). */
  DEFAULT_TOTAL_MAX_BYTES: 65536,
} as const;

/** Reasons a text data segment is malformed. */
export const TextError = {
  /** More bytes than the caller's limit. */
  TOO_LONG: 'too-long',
  /** The last pair is not followed by a NUL (RFC 7143 6.1: every pair is). */
  MISSING_NUL: 'missing-nul',
  /** A pair without '='. */
  MISSING_EQUALS: 'missing-equals',
  /** '=' at the start of a pair. */
  EMPTY_KEY: 'empty-key',
  KEY_TOO_LONG: 'key-too-long',
  /** A key with a character outside RFC 7143 6.1's key-name set. */
  BAD_KEY: 'bad-key',
  VALUE_TOO_LONG: 'value-too-long',
  /** Bytes that are not UTF-8 (RFC 7143 6.1: text is UTF-8). */
  ENCODING: 'encoding',
  /** RFC 7143 6.1/6.2: a key must not be repeated in one negotiation. */
  DUPLICATE_KEY: 'duplicate-key',
} as const;
export type TextErrorCode = (typeof TextError)[keyof typeof TextError];

export interface TextPair {
  readonly key: string;
  readonly value: string;
}

export type TextParseResult =
  | { readonly ok: true; readonly pairs: TextPair[] }
  | {
      readonly ok: false;
      readonly error: TextErrorCode;
      /** Byte offset of the offending pair. */
      readonly offset: number;
      /** The offending key when it could be decoded (safe to log: keys are ASCII). */
      readonly key?: string;
    };

/**
 * RFC 7143 6.1 key-name characters: letters, digits, '.', '-', '+', '@', '_'; plus '#'
 * for IANA-registered "X#..." extension keys. The first is a capital letter.
 */
const KEY_CHAR = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) KEY_CHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) KEY_CHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) KEY_CHAR[c] = 1;
for (const ch of '.-+@_#') KEY_CHAR[ch.charCodeAt(0)] = 1;

const NUL = 0x00;
const EQUALS = 0x3d;

/**
 * Parse a complete text data segment (all C-bit fragments already joined).
 * Empty segments between NULs (e.g. trailing padding) are skipped.
 */
export function parseTextKeys(
  data: Uint8Array,
  maxBytes: number = TextLimits.DEFAULT_TOTAL_MAX_BYTES,
): TextParseResult {
  if (data.length > maxBytes) return { ok: false, error: TextError.TOO_LONG, offset: maxBytes };
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength); // a view, no copy
  const pairs: TextPair[] = [];
  const seen = new Set<string>();
  let pos = 0;
  while (pos < buf.length) {
    let end = buf.indexOf(NUL, pos);
    if (end === pos) {
      pos++; // empty segment: padding or a stray NUL
      continue;
    }
    const missingNul = end < 0;
    if (missingNul) end = buf.length;
    const eq = buf.indexOf(EQUALS, pos);
    if (eq < 0 || eq >= end) {
      return { ok: false, error: missingNul ? TextError.MISSING_NUL : TextError.MISSING_EQUALS, offset: pos };
    }
    if (eq === pos) return { ok: false, error: TextError.EMPTY_KEY, offset: pos };
    if (eq - pos > TextLimits.KEY_MAX_BYTES) return { ok: false, error: TextError.KEY_TOO_LONG, offset: pos };
    const first = buf[pos]!;
    if (first < 0x41 || first > 0x5a) return { ok: false, error: TextError.BAD_KEY, offset: pos };
    for (let i = pos + 1; i < eq; i++) {
      if (KEY_CHAR[buf[i]!] !== 1) return { ok: false, error: TextError.BAD_KEY, offset: pos };
    }
    const key = buf.toString('latin1', pos, eq); // key bytes are checked ASCII
    if (missingNul) return { ok: false, error: TextError.MISSING_NUL, offset: pos, key };
    if (end - eq - 1 > TextLimits.VALUE_MAX_BYTES) {
      return { ok: false, error: TextError.VALUE_TOO_LONG, offset: pos, key };
    }
    const valueBytes = buf.subarray(eq + 1, end);
    if (!isUtf8(valueBytes)) return { ok: false, error: TextError.ENCODING, offset: pos, key };
    if (seen.has(key)) return { ok: false, error: TextError.DUPLICATE_KEY, offset: pos, key };
    seen.add(key);
    pairs.push({ key, value: valueBytes.toString('utf8') });
    pos = end + 1;
  }
  return { ok: true, pairs };
}

/** Encode pairs as text data: "key=value\0" each. The caller passes valid keys. */
export function buildTextKeys(pairs: ReadonlyArray<readonly [string, string]>): Buffer {
  if (pairs.length === 0) return Buffer.alloc(0);
  let s = '';
  for (const [k, v] of pairs) s += `${k}=${v}\0`;
  return Buffer.from(s, 'utf8');
}

/**
 * Joins the data segments of a Login or Text Request sequence sent with the C bit
 * (RFC 7143 11.10, 11.12): a pair may be split across PDUs. Bounded: push() returns
 * false once the total would exceed maxBytes, and the caller rejects the request.
 */
export class TextAccumulator {
  readonly maxBytes: number;
  #chunks: Buffer[] = [];
  #length = 0;

  constructor(maxBytes: number = TextLimits.DEFAULT_TOTAL_MAX_BYTES) {
    this.maxBytes = maxBytes;
  }

  get length(): number {
    return this.#length;
  }

  /** Append a fragment (copied: the caller's buffer may be reused). False if too long. */
  push(fragment: Uint8Array): boolean {
    if (this.#length + fragment.length > this.maxBytes) return false;
    if (fragment.length > 0) {
      this.#chunks.push(Buffer.from(fragment)); // allocates: login path only
      this.#length += fragment.length;
    }
    return true;
  }

  /** The joined text; empties the accumulator. */
  take(): Buffer {
    const out = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#length);
    this.reset();
    return out;
  }

  reset(): void {
    this.#chunks = [];
    this.#length = 0;
  }
}

// ---- value encodings (RFC 7143 6.1) ----

const DECIMAL = /^(?:0|[1-9][0-9]{0,15})$/;
const HEX_NUMBER = /^0[xX][0-9a-fA-F]{1,13}$/;

/**
 * numerical-value (RFC 7143 6.1): decimal-constant or hex-constant "0x...". Returns
 * undefined for anything else, including values above Number.MAX_SAFE_INTEGER (no key
 * we negotiate goes near that). Leading zeros in decimals are not allowed by 6.1.
 */
export function parseNumber(value: string): number | undefined {
  let n: number;
  if (DECIMAL.test(value)) n = Number(value);
  else if (HEX_NUMBER.test(value)) n = Number.parseInt(value.slice(2), 16);
  else return undefined;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** boolean-value (RFC 7143 6.1): "Yes" or "No", case-sensitive. */
export function parseBoolean(value: string): boolean | undefined {
  if (value === 'Yes') return true;
  if (value === 'No') return false;
  return undefined;
}

export function formatBoolean(value: boolean): 'Yes' | 'No' {
  return value ? 'Yes' : 'No';
}

/** list-of-values (RFC 7143 6.1): comma separated; empty items dropped. */
export function parseList(value: string): string[] {
  return value.split(',').filter((v) => v.length > 0);
}

const HEX_BINARY = /^0[xX]([0-9a-fA-F]+)$/;
const BASE64_BINARY = /^0[bB]([A-Za-z0-9+/]+={0,2})$/;

/**
 * binary-value (RFC 7143 6.1): hex-constant "0x..." (an odd digit count gets an implicit
 * leading zero) or base64-constant "0b...". Undefined if malformed or over maxBytes.
 */
export function parseBinary(value: string, maxBytes: number): Buffer | undefined {
  const hex = HEX_BINARY.exec(value);
  if (hex !== null) {
    let digits = hex[1]!;
    if (digits.length % 2 === 1) digits = `0${digits}`;
    if (digits.length / 2 > maxBytes) return undefined;
    return Buffer.from(digits, 'hex');
  }
  const b64 = BASE64_BINARY.exec(value);
  if (b64 !== null) {
    const text = b64[1]!;
    if (text.length % 4 !== 0) return undefined;
    if ((text.length / 4) * 3 > maxBytes + 2) return undefined;
    const out = Buffer.from(text, 'base64');
    return out.length <= maxBytes ? out : undefined;
  }
  return undefined;
}

/** Encode binary data as an RFC 7143 6.1 hex-constant ("0x" + lowercase digits). */
export function formatHex(data: Uint8Array): string {
  return `0x${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex')}`;
}

/** UTF-8 byte length of a string (values are limited in bytes, not characters). */
export function byteLength(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

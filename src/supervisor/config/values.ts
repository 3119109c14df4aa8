/**
 * Kinds of single values a configuration row can hold (integers, sizes, names, paths...):
 * each checks a value, says why it is wrong in the words operators see, and describes what
 * it accepts for the README.
 */

import path from 'node:path';
import { describe, type Path } from './issues.ts';
import type { Ctx, Node } from './rows.ts';
import { formatSize, parseSize, SizeError } from './sizes.ts';

/** A value's problem, as a check returns it (a string would be ambiguous for string values). */
export interface Problem {
  readonly problem: string;
}

export function problem(message: string): Problem {
  return { problem: message };
}

function isProblem(v: unknown): v is Problem {
  return typeof v === 'object' && v !== null && 'problem' in v;
}

/** A node from a parse function that may report several issues itself. */
export function leaf<T>(
  accepts: string,
  parse: (raw: unknown, at: Path, ctx: Ctx) => T | undefined,
): Node<T> {
  return { accepts, parse };
}

/** A node whose check returns the value or its one problem. */
export function simple<T>(accepts: string, check: (raw: unknown, ctx: Ctx) => T | Problem): Node<T> {
  return leaf(accepts, (raw, at, ctx) => {
    const r = check(raw, ctx);
    if (!isProblem(r)) return r;
    ctx.report(at, r.problem);
    return undefined;
  });
}

export function int(min: number, max: number): Node<number> {
  return simple(`integer ${min}-${max}`, (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
      ? v
      : problem(`must be an integer ${min}-${max}, got ${describe(v)}`),
  );
}

export function bool(): Node<boolean> {
  return simple('`true`, `false`', (v) =>
    typeof v === 'boolean' ? v : problem(`must be true or false, got ${describe(v)}`),
  );
}

export function oneOf<const V extends readonly (string | number)[]>(values: V): Node<V[number]> {
  return simple(values.map((v) => `\`${v}\``).join(', '), (v) =>
    (values as readonly unknown[]).includes(v)
      ? (v as V[number])
      : problem(`must be one of ${values.join(', ')}, got ${describe(v)}`),
  );
}

function sizeCheck(v: unknown): number | Problem {
  try {
    return parseSize(v);
  } catch (err) {
    if (!(err instanceof SizeError)) throw err;
    return problem(err.message);
  }
}

/** "512" for a count that is no round binary size, "4KiB" for one that is. */
function bytesText(n: number): string {
  const s = formatSize(n);
  return s.endsWith('iB') ? s : String(n);
}

/** A byte count written as a size (`64KiB`, `1048576`), within `min`..`max`. */
export function bytes(opts: { min: number; max: number; note?: string; multipleOf?: number }): Node<number> {
  const { min, max, note = '', multipleOf } = opts;
  const range = `${bytesText(min)}-${bytesText(max)}${bytesText(max).endsWith('iB') ? '' : ' bytes'}`;
  const accepts = multipleOf === undefined ? range : `${range}, multiple of ${multipleOf}`;
  return simple(accepts, (v) => {
    const n = sizeCheck(v);
    if (isProblem(n)) return n;
    if (n < min || n > max) return problem(`must be ${min}-${max} bytes${note}, got ${n}`);
    if (multipleOf !== undefined && n % multipleOf !== 0)
      return problem(`must be a multiple of ${multipleOf}, got ${n}`);
    return n;
  });
}

/** A size (`256MiB`, `1GiB`, or bytes). See sizes.ts for the units. */
export function size(): Node<number> {
  return simple('size, e.g. `64MiB`, `1GiB`', sizeCheck);
}

/** A string; `check` says why it is wrong, `transform` shapes the value that is kept. */
export function text<T = string>(
  accepts: string,
  check: (s: string) => string | undefined = () => undefined,
  transform?: (s: string, ctx: Ctx) => T,
): Node<NoInfer<T>> {
  return simple(accepts, (v, ctx) => {
    if (typeof v !== 'string') return problem(`must be a string, got ${describe(v)}`);
    const why = check(v);
    if (why !== undefined) return problem(why);
    return transform === undefined ? (v as T) : transform(v, ctx);
  });
}

const ID_RE = /^[A-Za-z0-9_.-]+$/;

/** An identifier: 1..max of A-Z a-z 0-9 _ . - */
export function identifier(max: number): Node<string> {
  return text(`1-${max} of \`A-Z a-z 0-9 _ . -\``, (s) =>
    s.length >= 1 && s.length <= max && ID_RE.test(s)
      ? undefined
      : `must be 1-${max} characters from A-Z a-z 0-9 _ . -, got ${JSON.stringify(s)}`,
  );
}

export function isIdentifier(s: string, max: number): boolean {
  return s.length >= 1 && s.length <= max && ID_RE.test(s);
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Printable ASCII of 1..max characters (SCSI INQUIRY / VPD text fields). */
export function asciiField(max: number): Node<string> {
  return text(`1-${max} printable ASCII characters`, (s) =>
    s.length >= 1 && s.length <= max && PRINTABLE_ASCII.test(s)
      ? undefined
      : `must be 1-${max} printable ASCII characters, got ${JSON.stringify(s)}`,
  );
}

export function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// Control characters (C0, DEL, C1) have no business in names, aliases or CHAP user names.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** A name shown to peers (alias, CHAP user): 1-255 bytes, no control characters. */
export function label(what: string): Node<string> {
  return text('1-255 bytes, no control characters', (s) =>
    s === '' || byteLength(s) > 255 || CONTROL_CHARS.test(s)
      ? `${what} must be 1-255 bytes without control characters`
      : undefined,
  );
}

/** A path; a relative one is resolved against the working directory at load time. */
export function fsPath(kind: 'file' | 'directory'): Node<string> {
  return text(
    'path (relative: from the working directory)',
    (s) => (s === '' || s.includes('\0') ? `must be a non-empty ${kind} path` : undefined),
    (s, ctx) => path.resolve(ctx.env.cwd, s),
  );
}

/** A duration in seconds, fractions allowed (lease timings). */
export function seconds(min: number, max: number): Node<number> {
  return simple(`seconds ${min}-${max}`, (v) =>
    typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max
      ? v
      : problem(`must be a number of seconds ${min}-${max}, got ${describe(v)}`),
  );
}

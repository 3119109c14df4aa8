/**
 * Byte sizes in the configuration: plain integers (bytes) or strings with a binary unit.
 *
 * All units are binary (powers of 1024): `K`, `Ki`, `KiB` all mean 1024 bytes, `M`/`Mi`/`MiB`
 * mean 1024^2, and so on up to `P`/`PiB`. Disk sizes in storage configs are almost always meant
 * as binary, and a LUN that is 4.8% smaller than the operator thought is a nasty surprise, so
 * the decimal-looking spellings `KB`, `MB`, `GB`, `TB`, `PB` are rejected as ambiguous rather
 * than guessed at. A bare `B` suffix is accepted. Letters are case-insensitive; whitespace
 * between number and unit is allowed; a fractional number is accepted only when the result is
 * a whole number of bytes (`1.5GiB` is fine, `0.3KiB` is not).
 */

const UNIT_SHIFT = { '': 0, k: 10, m: 20, g: 30, t: 40, p: 50 } as const;
type UnitLetter = keyof typeof UNIT_SHIFT;

// number, optional whitespace, optional unit letter, optional "i", optional "b".
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)$/i;

/** Why a value is not a valid size; thrown by {@link parseSize}. */
export class SizeError extends Error {
  override readonly name = 'SizeError';
}

/**
 * Parses a size into a byte count (a positive safe integer).
 * @throws SizeError with a message suitable for a config issue.
 */
export function parseSize(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new SizeError(`size must be a positive whole number of bytes, got ${String(value)}`);
    }
    return value;
  }
  if (typeof value !== 'string') {
    throw new SizeError('size must be a number of bytes or a string such as "64MiB" or "1GiB"');
  }
  const text = value.trim();
  const m = SIZE_RE.exec(text);
  if (m === null) {
    throw new SizeError(
      `invalid size "${value}": use bytes or a number with a binary unit (K, KiB, M, MiB, G, GiB, T, TiB)`,
    );
  }
  const [, num = '', letterRaw = '', iPart = '', bPart = ''] = m;
  const letter = letterRaw.toLowerCase() as UnitLetter;
  if (letter === '' && iPart !== '') {
    throw new SizeError(`invalid size "${value}": "i" must follow a unit letter`);
  }
  if (letter !== '' && iPart === '' && bPart !== '') {
    const upper = letterRaw.toUpperCase();
    throw new SizeError(
      `ambiguous size "${value}": spindle uses binary units only; write ${num}${upper}iB (or ${num}${upper})`,
    );
  }
  const multiplier = 2 ** UNIT_SHIFT[letter];
  // Exact for integers; a fraction is accepted only if the product is whole, which the
  // binary multiplier makes exact for short fractions such as .5 or .25.
  const bytes = Number(num) * multiplier;
  if (!Number.isSafeInteger(bytes)) {
    throw new SizeError(`invalid size "${value}": must be a whole number of bytes up to 2^53-1`);
  }
  if (bytes <= 0) {
    throw new SizeError(`invalid size "${value}": must be greater than zero`);
  }
  return bytes;
}

/** Formats a byte count with the largest binary unit that divides it exactly ("256MiB", "1536B"). */
export function formatSize(bytes: number): string {
  const units = [
    ['PiB', 50],
    ['TiB', 40],
    ['GiB', 30],
    ['MiB', 20],
    ['KiB', 10],
  ] as const;
  for (const [unit, shift] of units) {
    const mult = 2 ** shift;
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${unit}`;
  }
  return `${bytes}B`;
}

/**
 * Shapes of control-plane message bodies: a small declarative description, checked once
 * when a message is decoded, from which the TypeScript type of the body is inferred. One
 * definition per message, so the type the code sees and the check the receiver runs can
 * never disagree.
 *
 * Control messages cross threads of one process, written by spindle itself; the check is
 * there to turn a protocol mismatch (a bug, a stale worker after a restart) into a clear
 * error at the boundary instead of a TypeError deep inside a handler. Nested payloads that
 * come from the validated configuration (a DeviceConfig) are `opaque<T>()`: checked to be
 * an object, typed as T.
 */

export type Shape =
  | 'string'
  | 'number'
  | 'integer'
  | 'boolean'
  | 'null'
  | 'unknown'
  /** No value (a request whose answer is only "done"). */
  | 'void'
  | { readonly optional: Shape }
  | { readonly array: Shape }
  | { readonly tuple: readonly Shape[] }
  | { readonly record: Shape }
  | { readonly object: { readonly [key: string]: Shape } }
  | { readonly literal: readonly (string | number)[] }
  | { readonly either: readonly Shape[] }
  | Opaque<unknown>;

/** An object whose inner structure is vouched for by its producer (see the file comment). */
export interface Opaque<T> {
  readonly opaque: 'object' | 'array';
  /** Phantom: carries T for inference only; never set. */
  readonly __type?: T;
}

export function opaque<T>(kind: 'object' | 'array' = 'object'): Opaque<T> {
  return { opaque: kind };
}

export const optional = <S extends Shape>(s: S) => ({ optional: s }) as const;
export const arrayOf = <S extends Shape>(s: S) => ({ array: s }) as const;
export const recordOf = <S extends Shape>(s: S) => ({ record: s }) as const;
export const tuple = <const S extends readonly Shape[]>(...s: S) => ({ tuple: s }) as const;
export const object = <const O extends { readonly [key: string]: Shape }>(o: O) => ({ object: o }) as const;
export const literal = <const L extends readonly (string | number)[]>(...l: L) => ({ literal: l }) as const;
export const either = <const S extends readonly Shape[]>(...s: S) => ({ either: s }) as const;
export const EMPTY = { object: {} } as const;

type OptionalKeys<O> = { [K in keyof O]: O[K] extends { readonly optional: Shape } ? K : never }[keyof O];
type RequiredKeys<O> = Exclude<keyof O, OptionalKeys<O>>;
type Flat<T> = { [K in keyof T]: T[K] } & {};

/** The TypeScript type a shape describes. */
export type Infer<S> = S extends 'string'
  ? string
  : S extends 'number' | 'integer'
    ? number
    : S extends 'boolean'
      ? boolean
      : S extends 'null'
        ? null
        : S extends 'unknown'
          ? unknown
          : S extends 'void'
            ? void
            : S extends Opaque<infer T>
              ? T
              : S extends { readonly optional: infer I }
                ? Infer<I> | undefined
                : S extends { readonly array: infer I }
                  ? Infer<I>[]
                  : S extends { readonly tuple: infer T }
                    ? { -readonly [K in keyof T]: Infer<T[K]> }
                    : S extends { readonly record: infer I }
                      ? Record<string, Infer<I>>
                      : S extends { readonly literal: readonly (infer L)[] }
                        ? L
                        : S extends { readonly either: readonly (infer E)[] }
                          ? Infer<E>
                          : S extends { readonly object: infer O }
                            ? Flat<
                                { [K in RequiredKeys<O>]: Infer<O[K]> } & {
                                  [K in OptionalKeys<O>]?: Infer<O[K]>;
                                }
                              >
                            : never;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Check `value` against `shape`. Returns null when it conforms, else what is wrong and
 * where (`body.add[0].luIndex: expected integer`). Unknown object keys are refused: a
 * field the receiver does not know is a protocol mismatch too.
 */
export function checkShape(shape: Shape, value: unknown, at = 'body'): string | null {
  if (typeof shape === 'string') {
    switch (shape) {
      case 'unknown':
        return null;
      case 'void':
        return value === undefined || value === null ? null : `${at}: expected no value`;
      case 'integer':
        return Number.isInteger(value) ? null : `${at}: expected an integer`;
      case 'null':
        return value === null ? null : `${at}: expected null`;
      default:
        return typeof value === shape ? null : `${at}: expected ${shape}`;
    }
  }
  if ('opaque' in shape) {
    const ok = shape.opaque === 'array' ? Array.isArray(value) : isObject(value);
    return ok ? null : `${at}: expected ${shape.opaque === 'array' ? 'an array' : 'an object'}`;
  }
  if ('optional' in shape) return value === undefined ? null : checkShape(shape.optional, value, at);
  if ('literal' in shape) {
    return shape.literal.includes(value as string | number)
      ? null
      : `${at}: expected one of ${shape.literal.join(', ')}`;
  }
  if ('either' in shape) {
    for (const s of shape.either) if (checkShape(s, value, at) === null) return null;
    return `${at}: matches none of the alternatives`;
  }
  if ('array' in shape) {
    if (!Array.isArray(value)) return `${at}: expected an array`;
    for (let i = 0; i < value.length; i++) {
      const p = checkShape(shape.array, value[i], `${at}[${i}]`);
      if (p !== null) return p;
    }
    return null;
  }
  if ('tuple' in shape) {
    if (!Array.isArray(value) || value.length !== shape.tuple.length)
      return `${at}: expected a tuple of ${shape.tuple.length}`;
    for (let i = 0; i < value.length; i++) {
      const p = checkShape(shape.tuple[i]!, value[i], `${at}[${i}]`);
      if (p !== null) return p;
    }
    return null;
  }
  if ('record' in shape) {
    if (!isObject(value)) return `${at}: expected an object`;
    for (const [k, v] of Object.entries(value)) {
      const p = checkShape(shape.record, v, `${at}.${k}`);
      if (p !== null) return p;
    }
    return null;
  }
  if (!isObject(value)) return `${at}: expected an object`;
  const fields = shape.object;
  for (const k of Object.keys(value)) {
    if (!Object.hasOwn(fields, k) && value[k] !== undefined) return `${at}.${k}: unknown field`;
  }
  for (const [k, s] of Object.entries(fields)) {
    const p = checkShape(s, value[k], `${at}.${k}`);
    if (p !== null) return p;
  }
  return null;
}

/**
 * The machinery of a declarative configuration schema: a schema is a tree of nodes, and a
 * section node is a table of rows (fields). Each row carries everything known about one key:
 * the kind of value and its range (its node), whether it is required or its default, the
 * README description, and whether a reload (SIGHUP) may change it. From that one tree come
 * validation (here), the TypeScript output type ({@link Infer}), the README tables (docs.ts)
 * and the reload policy (reload.ts, through schema.ts).
 *
 * Validation never stops at the first problem: every node reports each issue with its exact
 * path and carries on, and a container is invalid (undefined) when anything inside it was.
 * Rules that relate several keys run on what did parse, so one mistake does not hide another.
 *
 * Rows are parsed in declaration order. A rule that refers to an earlier part of the file
 * (a target's LUN to the devices) reads what that part left in the validation's scope
 * ({@link scopeKey}); so a row that refers to another must come after it.
 */

import os from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { describe, unknownKeyMessage, type Path, type RawIssue } from './issues.ts';

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** YAML writes an empty value (`auth:`) as null; for optional settings that means "not set". */
export function absent(v: unknown): v is undefined | null {
  return v === undefined || v === null;
}

/** Values the defaults depend on, injectable for tests. */
export interface ConfigEnv {
  readonly hostname: string;
  readonly cores: number;
  readonly cwd: string;
  /** Environment variables (`passwordEnv`, SPINDLE_NODE_ID, SPINDLE_REDIS_URL). */
  readonly vars?: Readonly<Record<string, string | undefined>>;
  /** `--node` from the command line: which cluster node this process is (wins over the rest). */
  readonly node?: string;
  /** Loaded by an operator command, not a node: which node this process is does not matter. */
  readonly operator?: boolean;
  /** `--api HOST:PORT` from the command line: where the admin API listens (wins over `api.listen`). */
  readonly apiListen?: string;
  /** Reads a file named by the configuration (`passwordFile`); throws like readFileSync. */
  readonly readFile?: (path: string) => string;
}

export function defaultEnv(): ConfigEnv {
  return { hostname: os.hostname(), cores: os.availableParallelism(), cwd: process.cwd(), vars: process.env };
}

/**
 * What a configuration reload (SIGHUP) may do with a setting: apply it `live`, refuse any
 * change (`restart`: fixed for the run), or apply an increase and refuse a decrease (`grow`).
 */
export const Reload = { live: 'live', restart: 'restart', grow: 'grow' } as const;
export type Reload = (typeof Reload)[keyof typeof Reload];

// ---------------------------------------------------------------------------------------------
// Validation context

/** A named slot in a validation's scope; `init` creates its value the first time it is used. */
export interface ScopeKey<T> {
  readonly name: string;
  readonly init: () => T;
}

export function scopeKey<T>(name: string, init: () => T): ScopeKey<T> {
  return { name, init };
}

/** One validation run: the issues found so far, the environment, and the scope. */
export class Ctx {
  readonly issues: RawIssue[] = [];
  readonly env: ConfigEnv;
  private readonly scope: Map<ScopeKey<unknown>, unknown>;

  constructor(env: ConfigEnv, scope: Map<ScopeKey<unknown>, unknown> = new Map()) {
    this.env = env;
    this.scope = scope;
  }

  report(at: Path, message: string): void {
    this.issues.push({ segments: [...at], message });
  }

  get issueCount(): number {
    return this.issues.length;
  }

  /** The scope's value for `key`, created on first use. */
  scoped<T>(key: ScopeKey<T>): T {
    if (!this.scope.has(key)) this.scope.set(key, key.init());
    return this.scope.get(key) as T;
  }

  /** A context sharing this one's scope whose issues stay apart (to try a default). */
  probe(): Ctx {
    return new Ctx(this.env, this.scope);
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes and fields

/** A kind of value. */
export interface Node<T> {
  /** Parses a value that is present (not undefined or null); reports every problem, undefined if any. */
  parse(raw: unknown, at: Path, ctx: Ctx): T | undefined;
  /** What the README's "values" column says about it. */
  readonly accepts: string;
  /** A section's rows. */
  readonly fields?: Fields;
  /** A list's item. */
  readonly item?: Node<unknown>;
  /** A section documented in a README table of its own, wherever it is used. */
  readonly table?: string;
}

/** What a default function may look at. */
export interface DefaultContext {
  readonly env: ConfigEnv;
  /** The mapping the field belongs to, as written. */
  readonly mapping: Obj;
  /** The fields parsed so far in that mapping (those declared before this one). */
  readonly siblings: Readonly<Obj>;
}

/** A default written as the file would write it; parsed and checked like the file's values. */
export type RawDefault = string | number | boolean | readonly unknown[] | Readonly<Obj>;
/** A default that depends on the environment or the rest of the mapping; undefined: none. */
export type DefaultFn = (c: DefaultContext) => RawDefault | undefined;

export interface FieldSpec {
  /** The README description. '' for a grouping section that needs no row of its own. */
  readonly doc: string;
  /** Reload behaviour; inherited from the enclosing field when absent. */
  readonly reload?: Reload;
  /** The message when the key is missing; a function decides from the mapping (undefined: not required). */
  readonly required?: string | ((mapping: Obj) => string | undefined);
  readonly default?: RawDefault | DefaultFn;
  /** The README default column, when the default is not a literal (or is none). */
  readonly docDefault?: string;
  /** Leave the key out of the output when its value equals the default. */
  readonly omitWhenDefault?: boolean;
  /** The message when a computed default is itself invalid (e.g. the host name as node id). */
  readonly invalidDefault?: (raw: unknown) => string;
  /**
   * Member of a group of mutually exclusive keys of which exactly one is required; the
   * output has one key named after the group holding `{ type: <key>, ...value }`.
   */
  readonly variant?: string;
  /** Document a section as one row (`{ chap, mutualChap }`) instead of one row per key. */
  readonly collapse?: boolean;
  /** Overrides the node's "values" text in the README. */
  readonly accepts?: string;
}

export type Presence = 'always' | 'optional';

/** One row: a key of a section. `P`: always in the output or optional; `G`: its variant group. */
export interface Field<T, P extends Presence = Presence, G extends string | undefined = string | undefined> {
  readonly node: Node<T>;
  /** Type only (never set): whether the key is always in the output, for {@link FieldsOut}. */
  readonly presence?: P;
  readonly variant: G;
  readonly spec: FieldSpec;
}

export type AnyField = Field<unknown>;
export type Fields = Readonly<Record<string, AnyField>>;

type PresenceOf<S> = S extends { required: string }
  ? 'always'
  : S extends { omitWhenDefault: true }
    ? 'optional'
    : S extends { default: (c: DefaultContext) => infer R }
      ? undefined extends R
        ? 'optional'
        : 'always'
      : S extends { default: RawDefault }
        ? 'always'
        : 'optional';

type VariantOf<S> = S extends { variant: infer G extends string } ? G : undefined;

/** A row. Its presence in the output type follows from `required` / `default` / `omitWhenDefault`. */
export function field<T, const S extends FieldSpec>(
  node: Node<T>,
  spec: S,
): Field<T, PresenceOf<S>, VariantOf<S>> {
  return { node, spec, variant: spec.variant as VariantOf<S> };
}

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type ValueOf<F> = F extends Field<infer T, Presence, string | undefined> ? T : never;
type GroupsOf<F> = {
  [K in keyof F]: F[K] extends Field<unknown, Presence, infer G extends string> ? G : never;
}[keyof F];

/** The output of a section's rows: present keys, optional keys, one key per variant group. */
export type FieldsOut<F> = Simplify<
  {
    readonly [K in keyof F as F[K] extends Field<unknown, 'always', undefined> ? K : never]: ValueOf<F[K]>;
  } & {
    readonly [K in keyof F as F[K] extends Field<unknown, 'optional', undefined> ? K : never]?: ValueOf<F[K]>;
  } & {
    readonly [G in GroupsOf<F>]: {
      [K in keyof F]: F[K] extends Field<infer T, Presence, G> ? Simplify<{ readonly type: K } & T> : never;
    }[keyof F];
  }
>;

/** The type a node produces. */
export type Infer<N> = N extends Node<infer T> ? T : never;

// ---------------------------------------------------------------------------------------------
// Sections

/** What a section rule works with. */
export interface RuleContext {
  /** Path of the section. */
  readonly at: Path;
  readonly ctx: Ctx;
  /** The section as written. */
  readonly mapping: Obj;
  /** Reports an issue at a path relative to the section. */
  report(relative: Path, message: string): void;
  /** Whether the file sets `key` (not absent, not null). */
  given(key: string): boolean;
}

/**
 * A rule relating several keys of a section. It sees the keys that parsed (defaults applied;
 * a key that failed is missing) and reports through `r`.
 */
export type SectionRule<F> = (v: Partial<FieldsOut<F>>, r: RuleContext) => void;

export interface SectionOptions<F, B> {
  readonly rules?: readonly SectionRule<F>[];
  /** Shapes the output when it differs from the keys as written (only called when valid). */
  readonly build?: (v: FieldsOut<F>) => B;
  /** Documented in a README table of its own (its id in the README markers). */
  readonly table?: string;
}

export interface SectionNode<F extends Fields, B> extends Node<B> {
  readonly fields: F;
}

function orList(words: readonly string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}

function andList(words: readonly string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`;
}

/** Dotted paths of the keys of nested sections (not lists), for "did you mean" hints. */
function nestedKeys(fields: Fields, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, f] of Object.entries(fields)) {
    const sub = f.node.fields;
    if (sub === undefined) continue;
    for (const inner of Object.keys(sub)) out.push(`${prefix}${key}.${inner}`);
    out.push(...nestedKeys(sub, `${prefix}${key}.`));
  }
  return out;
}

/** The value of `f`'s default for this mapping, parsed; undefined when it has none (or it is invalid). */
function defaultFor(f: AnyField, at: Path, mapping: Obj, siblings: Obj, ctx: Ctx): unknown {
  const d = f.spec.default;
  if (d === undefined) return undefined;
  const raw = typeof d === 'function' ? d({ env: ctx.env, mapping, siblings }) : d;
  if (raw === undefined) return undefined;
  // Parsed like a value from the file, so a default obeys the same rules as the file.
  const probe = ctx.probe();
  const value = f.node.parse(raw, at, probe);
  if (probe.issueCount > 0) {
    const why = probe.issues[0]?.message ?? 'invalid';
    ctx.report(
      at,
      f.spec.invalidDefault?.(raw) ?? `the default ${JSON.stringify(raw)} is not valid here (${why}); set it`,
    );
    return undefined;
  }
  return value;
}

/**
 * A mapping with a fixed set of keys, one row each. Unknown keys are reported (never ignored:
 * a typo would silently revert a setting to its default), with a suggestion.
 */
export function section<const F extends Fields, B = FieldsOut<F>>(
  fields: F,
  // NoInfer: the rows alone say what F is (a rule written for any section must not widen it).
  options: SectionOptions<NoInfer<F>, B> = {},
  // NoInfer: B comes from `build` or is the rows' output, never from where the section is used.
): SectionNode<F, NoInfer<B>> {
  const rules = (options.rules ?? []) as readonly SectionRule<F>[];
  const build = options.build as ((v: FieldsOut<F>) => B) | undefined;
  const keys = Object.keys(fields);
  let hints: string[] | undefined;
  const groups = new Map<string, string[]>();
  for (const [key, f] of Object.entries(fields)) {
    if (f.variant === undefined) continue;
    groups.set(f.variant, [...(groups.get(f.variant) ?? []), key]);
  }

  function parse(raw: unknown, at: Path, ctx: Ctx): B | undefined {
    if (!isObj(raw)) {
      ctx.report(at, `must be a mapping (with keys ${keys.join(', ')}), got ${describe(raw)}`);
      return undefined;
    }
    const before = ctx.issueCount;
    for (const key of Object.keys(raw)) {
      if (!Object.hasOwn(fields, key)) {
        hints ??= nestedKeys(fields);
        ctx.report([...at, key], unknownKeyMessage(key, keys, hints));
      }
    }
    const out: Obj = {};
    const groupOk = new Map<string, boolean>();
    for (const [key, f] of Object.entries(fields)) {
      const fat = [...at, key];
      const v = raw[key];
      if (f.variant !== undefined) {
        let ok = groupOk.get(f.variant);
        if (ok === undefined) {
          // Checked once, where the group's first member is declared.
          const members = groups.get(f.variant) ?? [];
          const given = members.filter((k) => !absent(raw[k]));
          if (given.length === 0) ctx.report(at, `exactly one of ${orList(members)} is required`);
          else if (given.length > 1) ctx.report(at, `${andList(given)} are mutually exclusive`);
          ok = given.length === 1;
          groupOk.set(f.variant, ok);
        }
        if (!ok || absent(v)) continue;
        const parsed = f.node.parse(v, fat, ctx);
        if (parsed !== undefined) out[f.variant] = { type: key, ...(parsed as Obj) };
        continue;
      }
      if (absent(v)) {
        const missing = typeof f.spec.required === 'function' ? f.spec.required(raw) : f.spec.required;
        if (missing !== undefined) {
          ctx.report(fat, missing);
          continue;
        }
        const d = defaultFor(f, fat, raw, out, ctx);
        if (d !== undefined && f.spec.omitWhenDefault !== true) out[key] = d;
        continue;
      }
      const parsed = f.node.parse(v, fat, ctx);
      if (parsed === undefined) continue;
      if (f.spec.omitWhenDefault === true && isDeepStrictEqual(parsed, defaultFor(f, fat, raw, out, ctx)))
        continue;
      out[key] = parsed;
    }
    const rc: RuleContext = {
      at,
      ctx,
      mapping: raw,
      report: (relative, message) => ctx.report([...at, ...relative], message),
      given: (key) => !absent(raw[key]),
    };
    for (const rule of rules) rule(out as Partial<FieldsOut<F>>, rc);
    if (ctx.issueCount !== before) return undefined;
    const valid = out as FieldsOut<F>;
    return build === undefined ? (valid as B) : build(valid);
  }

  return {
    parse,
    fields,
    // A short mapping is shown with its keys; a long one has its own table or rows.
    accepts: keys.length <= 4 ? `\`{ ${keys.join(', ')} }\`` : 'mapping',
    ...(options.table === undefined ? {} : { table: options.table }),
  };
}

// ---------------------------------------------------------------------------------------------
// Lists

export interface ListOptions<T> {
  /** The start of the message for a value that is not a list (", got ..." follows). */
  readonly notList?: string;
  /** The message for an empty list; without it an empty list is fine. */
  readonly empty?: string;
  /** Items that must differ: `of` names an item (undefined: not comparable), `message` the clash. */
  readonly unique?: {
    readonly of: (raw: unknown, parsed: T | undefined) => string | undefined;
    /** The key inside the item the issue is reported at (the item itself when absent). */
    readonly at?: string;
    readonly message: (first: number, raw: unknown, parsed: T | undefined) => string;
  };
  /** Rules over the whole list as written (e.g. uniqueness across entries' own lists). */
  readonly rules?: readonly ((raws: readonly unknown[], at: Path, ctx: Ctx) => void)[];
  readonly accepts?: string;
}

export interface ListNode<T> extends Node<readonly T[]> {
  readonly item: Node<T>;
}

export function list<T>(item: Node<T>, options: ListOptions<T> = {}): ListNode<T> {
  function parse(raw: unknown, at: Path, ctx: Ctx): readonly T[] | undefined {
    if (!Array.isArray(raw)) {
      ctx.report(at, `${options.notList ?? 'must be a list'}, got ${describe(raw)}`);
      return undefined;
    }
    if (raw.length === 0 && options.empty !== undefined) {
      ctx.report(at, options.empty);
      return undefined;
    }
    const before = ctx.issueCount;
    const out: T[] = [];
    const seen = new Map<string, number>();
    raw.forEach((r: unknown, i: number) => {
      const iat = [...at, i];
      const parsed = item.parse(r, iat, ctx);
      const u = options.unique;
      const id = u?.of(r, parsed);
      if (u !== undefined && id !== undefined) {
        const first = seen.get(id);
        if (first !== undefined)
          ctx.report(u.at === undefined ? iat : [...iat, u.at], u.message(first, r, parsed));
        else seen.set(id, i);
      }
      if (parsed !== undefined) out.push(parsed);
    });
    for (const rule of options.rules ?? []) rule(raw, at, ctx);
    return ctx.issueCount === before ? out : undefined;
  }
  return {
    parse,
    item,
    accepts: options.accepts ?? (item.table === undefined ? `list of ${item.accepts}` : 'list'),
  };
}

/** Validates `raw` against `schema`: the value only when there is no issue, and every issue. */
export function validate<T>(
  schema: Node<T>,
  raw: unknown,
  env: ConfigEnv,
): { value: T | undefined; issues: readonly RawIssue[] } {
  const ctx = new Ctx(env);
  const value = schema.parse(raw, [], ctx);
  return ctx.issueCount > 0 ? { value: undefined, issues: ctx.issues } : { value, issues: [] };
}

// ---------------------------------------------------------------------------------------------
// Walking the schema (docs, reload policy)

/** The rows under a field: a section's, or the section items' of a list. */
export function childFields(node: Node<unknown>): Fields | undefined {
  return node.fields ?? node.item?.fields;
}

/** A field's reload policy: its own or inherited, or that of every setting below it; 'mixed' if they differ. */
export function reloadOf(f: AnyField, inherited: Reload | undefined, where = 'field'): Reload | 'mixed' {
  const own = f.spec.reload ?? inherited;
  const children = childFields(f.node);
  if (children === undefined) {
    if (own === undefined)
      throw new Error(`config schema: ${where} has no reload policy (set reload on it or a parent)`);
    return own;
  }
  const below = new Set(Object.entries(children).map(([k, c]) => reloadOf(c, own, `${where}.${k}`)));
  return below.size === 1 ? [...below][0]! : 'mixed';
}

/** The reload policy of each key of a section (or of a list's items), by output key. */
export interface ReloadPolicy {
  /** Plain keys. */
  readonly fields: Readonly<Record<string, Reload | 'mixed'>>;
  /** Variant groups: group -> member key -> that member's keys -> policy. */
  readonly variants: Readonly<
    Record<string, Readonly<Record<string, Readonly<Record<string, Reload | 'mixed'>>>>>
  >;
}

/** The policy of the keys under `node`; `inherited` applies where a row sets none. */
export function reloadPolicy(
  node: Node<unknown>,
  inherited: Reload | undefined,
  where: string,
): ReloadPolicy {
  const fields: Record<string, Reload | 'mixed'> = {};
  const variants: Record<string, Record<string, Record<string, Reload | 'mixed'>>> = {};
  for (const [key, c] of Object.entries(childFields(node) ?? {})) {
    if (c.variant === undefined) {
      fields[key] = reloadOf(c, inherited, `${where}.${key}`);
      continue;
    }
    const memberOwn = c.spec.reload ?? inherited;
    const members: Record<string, Reload | 'mixed'> = {};
    for (const [k, m] of Object.entries(childFields(c.node) ?? {}))
      members[k] = reloadOf(m, memberOwn, `${where}.${key}.${k}`);
    (variants[c.variant] ??= {})[key] = members;
  }
  return { fields, variants };
}

/** The keys of a policy whose every setting is fixed for the run. */
export function fixedKeys(policy: ReloadPolicy): string[] {
  return Object.entries(policy.fields)
    .filter(([, p]) => p === Reload.restart)
    .map(([k]) => k);
}

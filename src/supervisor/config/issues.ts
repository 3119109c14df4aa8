/**
 * Configuration problems: their paths, the error that carries them, and the wording shared by
 * every rule (how a wrong value is described, the did-you-mean for an unknown key).
 */

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
export type Path = readonly PathSegment[];

/** An issue before it is located in the source text. */
export interface RawIssue {
  readonly segments: Path;
  readonly message: string;
}

/** `['targets', 0, 'portals', 1]` -> `targets[0].portals[1]`. */
export function formatPath(segments: Path): string {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** How a wrong value is named in a message ("got the string "x"", "got a list"). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

/**
 * Case-insensitive edit distance where swapping two neighbouring letters is one edit
 * (optimal string alignment): "nmae" is one typo away from "name", not two.
 */
function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  // d[i][j]: distance between the first i letters of x and the first j of y.
  const d = Array.from({ length: x.length + 1 }, (_, i) =>
    Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[x.length]![y.length]!;
}

/**
 * The message for a key no row of its mapping has. `known` are the mapping's own keys;
 * `nested` the dotted paths of keys further down (`iscsi.maxBurstLength`), so a setting
 * written one level too high is pointed to where it belongs.
 */
export function unknownKeyMessage(
  key: string,
  known: readonly string[],
  nested: readonly string[] = [],
): string {
  const lower = key.toLowerCase();
  // A truncated key ("maxBurst") is as likely a typo as a misspelt one.
  const prefixOf = key.length >= 4 ? known.find((k) => k.toLowerCase().startsWith(lower)) : undefined;
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
  // The key exists deeper down: `maxBurstLength` at the top level, `size` beside `ram`.
  const deeper = nested.filter((p) => p.slice(p.lastIndexOf('.') + 1).toLowerCase() === lower);
  if (deeper.length > 0) {
    return `unknown key "${key}" (did you mean ${deeper.map((p) => `"${p}"`).join(' or ')}?)`;
  }
  return `unknown key "${key}" (allowed: ${known.join(', ')})`;
}

/**
 * Reading a YAML configuration file into a validated {@link SpindleConfig}.
 *
 * YAML is parsed strictly: duplicate keys, several documents in one file and unresolved tags
 * are errors, because a config that silently means something else than it says is worse than
 * one that does not load. Every issue is located back to its line in the file.
 */

import { readFile, stat } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type { SpindleConfig } from '../../shared/config-types.ts';
import { ConfigError, ConfigErrorCode, formatPath, type ConfigIssue, type PathSegment } from './issues.ts';
import { defaultEnv, type ConfigEnv } from './rows.ts';
import { validateConfig } from './schema.ts';

export { ConfigError, ConfigErrorCode, formatIssues } from './issues.ts';
export type { ConfigIssue } from './issues.ts';
export type { ConfigEnv } from './rows.ts';

/** Upper bound on alias expansion, against "billion laughs" style documents. */
const MAX_ALIAS_COUNT = 100;

/**
 * Reads and validates a configuration file. `node` (the command line's `--node`) says which
 * cluster node this process is. @throws ConfigError
 */
export async function loadConfig(path: string, overrides: { node?: string; operator?: boolean; apiListen?: string } = {}): Promise<SpindleConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(
      ConfigErrorCode.unreadable,
      path,
      [{ path: '', message: `cannot read the configuration file: ${reason}` }],
      { cause: err },
    );
  }
  const env = defaultEnv();
  return parseConfig(text, path, {
    ...env,
    ...(overrides.node === undefined ? {} : { node: overrides.node }),
    ...(overrides.operator === true ? { operator: true } : {}),
    ...(overrides.apiListen === undefined ? {} : { apiListen: overrides.apiListen }),
  });
}

/**
 * Parses and validates YAML text. `source` names it in error messages (usually the file path).
 * `env` overrides the values defaults are derived from (host name, core count, working dir).
 * @throws ConfigError
 */
export function parseConfig(yamlText: string, source: string, env?: ConfigEnv): SpindleConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(yamlText, {
    lineCounter,
    prettyErrors: false, // pretty errors span several lines; we want one line per issue
    strict: true,
    uniqueKeys: true,
  });
  const lineOf = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;

  const syntax: ConfigIssue[] = [...doc.errors, ...doc.warnings].map((e) => ({
    path: '',
    message: `YAML: ${e.message}`,
    ...optionalLine(lineOf(e.pos[0])),
  }));
  if (syntax.length > 0) throw new ConfigError(ConfigErrorCode.syntax, source, syntax);

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(ConfigErrorCode.syntax, source, [{ path: '', message: `YAML: ${reason}` }], {
      cause: err,
    });
  }

  const { config, issues } = validateConfig(raw, env ?? defaultEnv());
  if (config === undefined || issues.length > 0) {
    const located = issues.map((issue) => ({
      path: formatPath(issue.segments),
      message: issue.message,
      ...optionalLine(lineOf(locate(doc, issue.segments))),
    }));
    throw new ConfigError(ConfigErrorCode.invalid, source, located);
  }
  return config;
}

function optionalLine(line: number | undefined): { line?: number } {
  return line === undefined ? {} : { line };
}

/**
 * Offset in the source of the value at `segments`, or of its deepest existing ancestor (a
 * missing required key is reported where its parent is). Map entries point at their key.
 */
function locate(doc: Document, segments: readonly PathSegment[]): number | undefined {
  let node: unknown = doc.contents;
  let offset = (node as YamlNode | null)?.range?.[0];
  for (const seg of segments) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      // Compare as strings: the validator sees `0:` (a LUN) as the key "0".
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (pair === undefined) break;
      const keyNode = pair.key as YamlNode | null;
      const valueNode = pair.value as YamlNode | null;
      offset = keyNode?.range?.[0] ?? valueNode?.range?.[0] ?? offset;
      node = valueNode;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | null | undefined;
      if (item === undefined || item === null) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}

/**
 * Issue 12 (secrets): a configuration file that holds secrets inline (`secret:` of CHAP)
 * and that every user of the host may read. Returns the warning to show, or null. The
 * cure it names: `secretFile` / `secretEnv` (Kubernetes Secrets), or `chmod 600`.
 */
export async function secretsExposure(path: string): Promise<string | null> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(path)).mode;
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  if ((mode & 0o004) === 0) return null;
  const inline = inlineSecretPaths(parseDocument(text).toJS() as unknown);
  if (inline.length === 0) return null;
  return (
    `${path} is readable by every user of this host and holds secrets inline (${inline.join(', ')}): ` +
    'restrict it (chmod 600) or move them to secretFile / secretEnv'
  );
}

/** Paths of inline `secret` values in a parsed configuration. */
export function inlineSecretPaths(raw: unknown, at = ''): string[] {
  if (Array.isArray(raw)) return raw.flatMap((v, i) => inlineSecretPaths(v, `${at}[${i}]`));
  if (typeof raw !== 'object' || raw === null) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    const p = at === '' ? k : `${at}.${k}`;
    if (k === 'secret' && typeof v === 'string') out.push(p);
    else out.push(...inlineSecretPaths(v, p));
  }
  return out;
}

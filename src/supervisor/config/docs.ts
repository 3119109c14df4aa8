/**
 * The configuration reference tables of README.md, generated from the schema rows, so the
 * documentation cannot drift from what is validated. Each table sits between two marker
 * comments; the prose around them is left alone.
 *
 *   npm run docs:config            rewrite the tables in README.md
 *   npm run docs:config -- --check exit 1 when README.md is out of date
 *
 * A section with `table` set gets a table of its own (once, wherever it is used); other
 * sections are flattened into their parent's table as dotted keys (`workers.session`), or
 * shown as one row when their row says `collapse`.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isObj, reloadOf, type AnyField, type Fields, type Node, type Reload } from './rows.ts';
import { configSchema } from './schema.ts';

export interface DocRow {
  readonly key: string;
  readonly default: string;
  readonly values: string;
  readonly reload: string;
  readonly meaning: string;
}

/** Table id (as in the README markers) -> rows. */
export type DocTables = ReadonlyMap<string, readonly DocRow[]>;

const RELOAD_TEXT: Record<Reload | 'mixed', string> = {
  live: 'live',
  restart: 'restart',
  grow: 'grow only',
  mixed: 'per key',
};

function code(s: string): string {
  return `\`${s}\``;
}

function defaultText(f: AnyField, fields: Fields, where: string): string {
  const { spec } = f;
  if (spec.docDefault !== undefined) return spec.docDefault;
  if (f.variant !== undefined) {
    const members = Object.entries(fields).filter(([, g]) => g.variant === f.variant);
    return `one of ${members.map(([k]) => code(k)).join(', ')}`;
  }
  if (typeof spec.required === 'string') return 'required';
  const d = spec.default;
  if (typeof d === 'function' || typeof spec.required === 'function') {
    throw new Error(`config schema: ${where} needs docDefault (its default or requirement is computed)`);
  }
  if (d === undefined) return 'none';
  // A section's default `{}` means "each key's default", shown on the keys.
  if (isObj(d)) return Object.keys(d).length === 0 ? '' : code(JSON.stringify(d));
  return code(Array.isArray(d) ? JSON.stringify(d) : String(d));
}

/** The README tables the schema under `root` produces. */
export function configTables(root: Node<unknown> = configSchema, rootTable = 'top'): DocTables {
  const tables = new Map<string, DocRow[]>();

  function table(id: string, node: Node<unknown>, inherited: Reload | undefined, where: string): void {
    if (tables.has(id)) return;
    const rows: DocRow[] = [];
    tables.set(id, rows);
    addRows(rows, node.fields ?? {}, '', inherited, where);
  }

  /** Tables under a section shown as one row (its own keys are not listed). */
  function tablesBelow(fields: Fields, inherited: Reload | undefined, where: string): void {
    for (const [key, f] of Object.entries(fields)) {
      const own = f.spec.reload ?? inherited;
      const target = f.node.table !== undefined ? f.node : f.node.item;
      if (target?.table !== undefined) table(target.table, target, own, `${where}.${key}`);
      else if (f.node.fields !== undefined) tablesBelow(f.node.fields, own, `${where}.${key}`);
    }
  }

  function addRows(
    rows: DocRow[],
    fields: Fields,
    prefix: string,
    inherited: Reload | undefined,
    where: string,
  ): void {
    for (const [key, f] of Object.entries(fields)) {
      const name = `${prefix}${key}`;
      const at = `${where}.${key}`;
      const own = f.spec.reload ?? inherited;
      const row = (): DocRow => ({
        key: code(name),
        default: defaultText(f, fields, at),
        values: f.spec.accepts ?? f.node.accepts,
        reload: RELOAD_TEXT[reloadOf(f, inherited, at)],
        meaning: f.spec.doc,
      });
      const ownTable =
        f.node.table !== undefined ? f.node : f.node.item?.table !== undefined ? f.node.item : undefined;
      if (ownTable?.table !== undefined) {
        rows.push(row());
        table(ownTable.table, ownTable, own, at);
      } else if (f.node.fields !== undefined && f.spec.collapse !== true) {
        if (f.spec.doc !== '') rows.push(row());
        addRows(rows, f.node.fields, `${name}.`, own, at);
      } else {
        rows.push(row());
        if (f.node.fields !== undefined) tablesBelow(f.node.fields, own, at);
      }
    }
  }

  table(rootTable, root, undefined, 'config');
  return tables;
}

function cell(s: string): string {
  return s.replaceAll('|', '\\|');
}

export function renderTable(rows: readonly DocRow[]): string {
  const lines = ['| key | default | values | SIGHUP | meaning |', '|---|---|---|---|---|'];
  for (const r of rows)
    lines.push(`| ${[r.key, r.default, r.values, r.reload, r.meaning].map(cell).join(' | ')} |`);
  return lines.join('\n');
}

const MARKER_RE = /<!-- BEGIN GENERATED config:([\w-]+)[^>]*-->\n[\s\S]*?<!-- END GENERATED config:\1 -->/g;

function begin(id: string): string {
  return `<!-- BEGIN GENERATED config:${id} (npm run docs:config; the rows are in src/supervisor/config/schema.ts) -->`;
}

/**
 * README text with every generated table replaced. Throws when a table has no markers or
 * markers name no table, so a new section cannot go undocumented by accident.
 */
export function updateReadme(readme: string, tables: DocTables = configTables()): string {
  const seen = new Set<string>();
  const out = readme.replace(MARKER_RE, (_all, id: string) => {
    const rows = tables.get(id);
    if (rows === undefined)
      throw new Error(`README.md has markers for config:${id}, which the schema does not produce`);
    seen.add(id);
    return `${begin(id)}\n${renderTable(rows)}\n<!-- END GENERATED config:${id} -->`;
  });
  const missing = [...tables.keys()].filter((id) => !seen.has(id));
  if (missing.length > 0) {
    throw new Error(
      `README.md has no markers for ${missing.map((id) => `config:${id}`).join(', ')}; add ` +
        `"${begin(missing[0]!)}" and "<!-- END GENERATED config:${missing[0]} -->" where the table belongs`,
    );
  }
  return out;
}

export const README_PATH = fileURLToPath(new URL('../../../README.md', import.meta.url));

if (import.meta.main) {
  const check = process.argv.includes('--check');
  const before = readFileSync(README_PATH, 'utf8');
  const after = updateReadme(before);
  if (before === after) {
    process.stdout.write('README.md configuration tables are up to date\n');
  } else if (check) {
    process.stderr.write('README.md configuration tables are out of date: run npm run docs:config\n');
    process.exitCode = 1;
  } else {
    writeFileSync(README_PATH, after);
    process.stdout.write('README.md configuration tables rewritten\n');
  }
}

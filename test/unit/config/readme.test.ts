/**
 * README.md's configuration reference tables are generated from the schema rows
 * (config/docs.ts, `npm run docs:config`); this fails when they differ.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configTables, README_PATH, renderTable, updateReadme } from '../../../src/supervisor/config/docs.ts';

const readme = readFileSync(README_PATH, 'utf8');

describe('README.md configuration reference', () => {
  it('matches what the schema generates (run `npm run docs:config` after changing a row)', () => {
    expect(updateReadme(readme)).toBe(readme);
  });

  it('has one table per documented section, each row with a default, values, reload policy and meaning', () => {
    const tables = configTables();
    expect([...tables.keys()]).toEqual(['top', 'iscsi', 'devices', 'targets', 'chap', 'acls', 'cluster', 'cluster-redis', 'cluster-lease', 'cluster-nodes', 'api']);
    for (const rows of tables.values()) {
      for (const r of rows) {
        expect(r.values, r.key).not.toBe('');
        expect(['live', 'restart', 'grow only', 'per key'], r.key).toContain(r.reload);
        expect(r.meaning, r.key).not.toBe('');
      }
    }
    // A few rows, as operators read them.
    const row = (table: string, key: string) => tables.get(table)?.find((r) => r.key === `\`${key}\``);
    expect(row('top', 'workers.session')).toMatchObject({
      default: 'cores (at most 64)',
      values: 'integer 1-64',
      reload: 'restart',
    });
    expect(row('iscsi', 'maxTransferLength')).toMatchObject({
      default: '`32MiB`',
      values: '4KiB-1GiB, multiple of 4096',
    });
    expect(row('devices', 'file.size')).toMatchObject({ default: 'required', reload: 'grow only' });
    expect(row('devices', 'ram')).toMatchObject({ default: 'one of `ram`, `file`, `block`, `null`, `cdrom`' });
    expect(row('targets', 'portals')).toMatchObject({ reload: 'restart' });
    expect(row('acls', 'auth')).toMatchObject({
      default: "the target's `auth`",
      values: '`{ chap, mutualChap }`',
    });
  });

  it('refuses markers for a table the schema does not produce, and a table without markers', () => {
    const stale = `${readme}\n<!-- BEGIN GENERATED config:gone -->\n<!-- END GENERATED config:gone -->\n`;
    expect(() => updateReadme(stale)).toThrow('README.md has markers for config:gone');
    const without = readme.replace(
      /<!-- BEGIN GENERATED config:chap[\s\S]*?<!-- END GENERATED config:chap -->/,
      '',
    );
    expect(() => updateReadme(without)).toThrow('README.md has no markers for config:chap');
  });

  it('rewrites only between the markers', () => {
    const text =
      'before\n<!-- BEGIN GENERATED config:acls -->\nold\n<!-- END GENERATED config:acls -->\nafter\n';
    const acls = configTables().get('acls')!;
    const out = updateReadme(text, new Map([['acls', acls]]));
    expect(out.startsWith('before\n<!-- BEGIN GENERATED config:acls (npm run docs:config;')).toBe(true);
    expect(out.endsWith(`${renderTable(acls)}\n<!-- END GENERATED config:acls -->\nafter\n`)).toBe(true);
  });

  it('escapes pipes inside cells', () => {
    expect(
      renderTable([{ key: '`a`', default: 'x', values: 'a | b', reload: 'live', meaning: 'm' }]).split(
        '\n',
      )[2],
    ).toBe('| `a` | x | a \\| b | live | m |');
  });
});

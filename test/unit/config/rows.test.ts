/**
 * The declarative schema machinery (config/rows.ts) on small schemas of its own: presence and
 * defaults, variant groups, rules that see partial values, lists, scope across rows, and the
 * reload policy walk.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { formatPath } from '../../../src/supervisor/config/issues.ts';
import {
  field,
  fixedKeys,
  list,
  Reload,
  reloadOf,
  reloadPolicy,
  scopeKey,
  section,
  validate,
  type ConfigEnv,
  type Infer,
} from '../../../src/supervisor/config/rows.ts';
import { bool, fsPath, int, leaf, oneOf, size, text } from '../../../src/supervisor/config/values.ts';

const ENV: ConfigEnv = { hostname: 'h', cores: 8, cwd: '/work' };

function run<T>(schema: Parameters<typeof validate<T>>[0], raw: unknown) {
  const { value, issues } = validate(schema, raw, ENV);
  return { value, issues: issues.map((i) => `${formatPath(i.segments)}: ${i.message}`) };
}

const disk = section(
  {
    name: field(text('name'), { required: 'name is required', doc: 'n' }),
    ram: field(
      section({ size: field(size(), { required: 'size is required', reload: Reload.grow, doc: 's' }) }),
      {
        variant: 'backing',
        doc: 'r',
      },
    ),
    file: field(
      section({
        path: field(fsPath('file'), { required: 'path is required', doc: 'p' }),
        size: field(size(), { required: 'size is required', reload: Reload.grow, doc: 's' }),
      }),
      { variant: 'backing', doc: 'f' },
    ),
    blockSize: field(oneOf([512, 4096] as const), { default: 512, doc: 'b' }),
    thin: field(bool(), { default: false, omitWhenDefault: true, doc: 't' }),
    depth: field(int(1, 8), { doc: 'optional, no default' }),
    threads: field(int(1, 64), { default: ({ env }) => env.cores, docDefault: 'cores', doc: 'from the env' }),
  },
  {
    rules: [
      (v, r) => {
        if (v.backing !== undefined && v.blockSize !== undefined && v.backing.size % v.blockSize !== 0) {
          r.report([v.backing.type, 'size'], `not a multiple of ${v.blockSize}`);
        }
      },
    ],
  },
);

describe('sections', () => {
  it('derives the output type from the rows: required, defaulted, optional, omitted-when-default, variants', () => {
    type Disk = Infer<typeof disk>;
    expectTypeOf<Disk['name']>().toEqualTypeOf<string>();
    expectTypeOf<Disk['blockSize']>().toEqualTypeOf<512 | 4096>();
    expectTypeOf<Disk['threads']>().toEqualTypeOf<number>();
    expectTypeOf<Disk['depth']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<Disk['thin']>().toEqualTypeOf<boolean | undefined>();
    expectTypeOf<Disk['backing']>().toEqualTypeOf<
      | { readonly type: 'ram'; readonly size: number }
      | { readonly type: 'file'; readonly path: string; readonly size: number }
    >();
    expectTypeOf<Disk>().not.toHaveProperty('ram');
  });

  it('applies defaults (parsed like file values, env-derived ones included) and resolves paths', () => {
    expect(run(disk, { name: 'd', file: { path: 'img/d.img', size: '1MiB' } })).toEqual({
      value: {
        name: 'd',
        backing: { type: 'file', path: '/work/img/d.img', size: 2 ** 20 },
        blockSize: 512,
        threads: 8,
      },
      issues: [],
    });
  });

  it('leaves out a value equal to its default when the row says so, keeps it otherwise', () => {
    expect(run(disk, { name: 'd', ram: { size: 512 }, thin: false }).value).not.toHaveProperty('thin');
    expect(run(disk, { name: 'd', ram: { size: 512 }, thin: true }).value).toHaveProperty('thin', true);
  });

  it('reports every problem at once, rules included, and returns no value', () => {
    const r = run(disk, { nmae: 'd', ram: { size: 1000 }, blockSize: 1024, depth: 9 });
    expect(r.value).toBeUndefined();
    expect(r.issues).toEqual([
      'nmae: unknown key "nmae" (did you mean "name"?)',
      'name: name is required',
      'blockSize: must be one of 512, 4096, got number 1024',
      'depth: must be an integer 1-8, got number 9',
    ]);
    // The rule runs on what parsed: blockSize failed, so it cannot judge the size (no noise).
    expect(run(disk, { name: 'd', ram: { size: 1000 } }).issues).toEqual(['ram.size: not a multiple of 512']);
  });

  it('requires exactly one member of a variant group, naming them all', () => {
    expect(run(disk, { name: 'd' }).issues).toEqual([': exactly one of ram or file is required']);
    expect(run(disk, { name: 'd', ram: { size: 512 }, file: { path: '/x', size: 512 } }).issues).toEqual([
      ': ram and file are mutually exclusive',
    ]);
  });

  it('points a key written at the wrong level to where it belongs', () => {
    expect(run(disk, { name: 'd', ram: { size: 512 }, size: 512 }).issues).toEqual([
      'size: unknown key "size" (did you mean "ram.size" or "file.size"?)',
    ]);
    expect(run(disk, { name: 'd', ram: { size: 512 }, colour: 1 }).issues).toEqual([
      'colour: unknown key "colour" (allowed: name, ram, file, blockSize, thin, depth, threads)',
    ]);
  });

  it('reports a computed default that is not valid, with the row message when it has one', () => {
    const s = section({
      id: field(
        text('id', (x) => (x.includes(' ') ? 'no spaces' : undefined)),
        {
          default: ({ env }) => env.hostname,
          docDefault: 'host name',
          doc: 'id',
        },
      ),
      other: field(
        text('id', (x) => (x.includes(' ') ? 'no spaces' : undefined)),
        {
          default: ({ env }) => env.hostname,
          docDefault: 'host name',
          invalidDefault: (h) => `the host name ${JSON.stringify(h)} will not do; set other`,
          doc: 'id',
        },
      ),
    });
    const { issues } = validate(s, {}, { ...ENV, hostname: 'a b' });
    expect(issues.map((i) => i.message)).toEqual([
      'the default "a b" is not valid here (no spaces); set it',
      'the host name "a b" will not do; set other',
    ]);
  });

  it('treats null as absent, and a required function decides from the mapping', () => {
    const s = section({
      mode: field(oneOf(['a', 'b'] as const), { doc: 'm' }),
      value: field(int(0, 9), {
        required: (m) => (m['mode'] === 'b' ? 'value is required in mode b' : undefined),
        doc: 'v',
      }),
    });
    expect(run(s, { mode: 'a', value: null })).toEqual({ value: { mode: 'a' }, issues: [] });
    expect(run(s, { mode: 'b' }).issues).toEqual(['value: value is required in mode b']);
    expect(run(s, 'x').issues).toEqual([': must be a mapping (with keys mode, value), got the string "x"']);
  });
});

describe('lists and scope', () => {
  const NAMES = scopeKey('names', () => new Set<string>());
  const item = section({ name: field(text('name'), { required: 'name is required', doc: 'n' }) });
  const doc = section({
    items: field(
      list(item, {
        empty: 'at least one item',
        unique: {
          of: (raw) =>
            typeof (raw as { name?: unknown })?.name === 'string'
              ? (raw as { name: string }).name
              : undefined,
          at: 'name',
          message: (first) => `duplicate (also items[${first}])`,
        },
        rules: [
          (raws, _at, ctx) =>
            raws.forEach((r) => ctx.scoped(NAMES).add(String((r as { name?: unknown }).name))),
        ],
      }),
      { required: 'items are required', doc: 'i' },
    ),
    refs: field(
      list(
        leaf<string>('a name', (raw, at, ctx) => {
          if (typeof raw === 'string' && ctx.scoped(NAMES).has(raw)) return raw;
          ctx.report(at, `unknown item ${JSON.stringify(raw)}`);
          return undefined;
        }),
      ),
      { default: [], doc: 'r' },
    ),
  });

  it('checks items, uniqueness and emptiness, with item paths', () => {
    expect(run(doc, { items: [{ name: 'a' }, { name: 'b' }, { name: 'a' }, {}] }).issues).toEqual([
      'items[2].name: duplicate (also items[0])',
      'items[3].name: name is required',
    ]);
    expect(run(doc, { items: [] }).issues).toEqual(['items: at least one item']);
    expect(run(doc, { items: { name: 'a' } }).issues).toEqual(['items: must be a list, got a mapping']);
  });

  it('lets a later row refer to what an earlier one put in the scope', () => {
    expect(run(doc, { items: [{ name: 'a' }], refs: ['a'] }).value).toEqual({
      items: [{ name: 'a' }],
      refs: ['a'],
    });
    expect(run(doc, { items: [{ name: 'a' }], refs: ['a', 'z'] }).issues).toEqual([
      'refs[1]: unknown item "z"',
    ]);
  });
});

describe('reload policy walk', () => {
  const s = section({
    fixedOne: field(int(0, 1), { reload: Reload.restart, doc: 'x' }),
    group: field(section({ a: field(int(0, 1), { doc: 'a' }), b: field(int(0, 1), { doc: 'b' }) }), {
      reload: Reload.restart,
      doc: '',
    }),
    mixed: field(
      section({
        a: field(int(0, 1), { doc: 'a' }),
        b: field(int(0, 1), { reload: Reload.restart, doc: 'b' }),
      }),
      {
        reload: Reload.live,
        doc: '',
      },
    ),
    disks: field(list(disk), { reload: Reload.live, doc: 'd' }),
  });

  it('inherits the nearest policy and aggregates containers', () => {
    const p = reloadPolicy(s, undefined, 'test');
    expect(p.fields).toEqual({ fixedOne: 'restart', group: 'restart', mixed: 'mixed', disks: 'mixed' });
    expect(fixedKeys(p)).toEqual(['fixedOne', 'group']);
    const d = reloadPolicy(s.fields.disks.node, Reload.live, 'disks[]');
    expect(d.fields).toEqual({
      name: 'live',
      blockSize: 'live',
      thin: 'live',
      depth: 'live',
      threads: 'live',
    });
    expect(d.variants).toEqual({ backing: { ram: { size: 'grow' }, file: { path: 'live', size: 'grow' } } });
  });

  it('refuses a row with no policy anywhere above it', () => {
    const orphan = field(section({ x: field(int(0, 1), { doc: 'x' }) }), { doc: '' });
    expect(() => reloadOf(orphan, undefined, 'orphan')).toThrow('orphan.x has no reload policy');
  });
});

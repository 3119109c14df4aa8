import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildTextKeys,
  formatHex,
  parseBinary,
  parseBoolean,
  parseList,
  parseNumber,
  parseTextKeys,
  TextAccumulator,
  TextError,
} from '../../../../src/shared/iscsi/text-keys.ts';

const text = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Parse after feeding the accumulator in the given fragment sizes. */
function parseFragmented(data: Buffer, sizes: number[]): ReturnType<typeof parseTextKeys> {
  const acc = new TextAccumulator();
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const n = Math.max(1, sizes[i++ % sizes.length]!);
    expect(acc.push(data.subarray(pos, pos + n))).toBe(true);
    pos += n;
  }
  return parseTextKeys(acc.take());
}

describe('parseTextKeys', () => {
  const login = text(
    'InitiatorName=iqn.1993-08.org.debian:01:abc\0SessionType=Normal\0' +
      'TargetName=iqn.2024-01.io.spindle:disk1\0HeaderDigest=None,CRC32C\0',
  );
  const expected = [
    { key: 'InitiatorName', value: 'iqn.1993-08.org.debian:01:abc' },
    { key: 'SessionType', value: 'Normal' },
    { key: 'TargetName', value: 'iqn.2024-01.io.spindle:disk1' },
    { key: 'HeaderDigest', value: 'None,CRC32C' },
  ];

  it('parses a whole segment', () => {
    expect(parseTextKeys(login)).toEqual({ ok: true, pairs: expected });
  });

  it('parses the same byte by byte and in random splits', () => {
    expect(parseFragmented(login, [1])).toEqual({ ok: true, pairs: expected });
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), (sizes) => {
        expect(parseFragmented(login, sizes)).toEqual({ ok: true, pairs: expected });
      }),
    );
  });

  it('round-trips buildTextKeys', () => {
    const pairs: Array<[string, string]> = [
      ['TargetAlias', 'disque économique'],
      ['CHAP_C', '0xdeadbeef'],
      ['X-com.example.opt', 'a=b'], // '=' inside a value is kept
    ];
    const parsed = parseTextKeys(buildTextKeys(pairs));
    expect(parsed).toEqual({ ok: true, pairs: pairs.map(([key, value]) => ({ key, value })) });
    expect(buildTextKeys([]).length).toBe(0);
  });

  it('accepts empty input, empty values and skips padding NULs', () => {
    expect(parseTextKeys(Buffer.alloc(0))).toEqual({ ok: true, pairs: [] });
    expect(parseTextKeys(text('InitiatorAlias=\0\0\0\0'))).toEqual({
      ok: true,
      pairs: [{ key: 'InitiatorAlias', value: '' }],
    });
  });

  it.each([
    ['missing NUL after the last pair', 'A=1\0B=2', TextError.MISSING_NUL],
    ['missing NUL and no =', 'A=1\0B', TextError.MISSING_NUL],
    ['missing =', 'A=1\0Bee\0', TextError.MISSING_EQUALS],
    ['empty key', '=value\0', TextError.EMPTY_KEY],
    ['duplicate key', 'A=1\0B=2\0A=1\0', TextError.DUPLICATE_KEY],
    ['lower-case first letter', 'abc=1\0', TextError.BAD_KEY],
    ['space in key', 'Max Burst=1\0', TextError.BAD_KEY],
    ['key of 64 bytes', `${'K'.repeat(64)}=1\0`, TextError.KEY_TOO_LONG],
  ])('rejects %s', (_name, input, error) => {
    const r = parseTextKeys(text(input));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toBe(error);
  });

  it('accepts a 63-byte key and an 8192-byte value, rejects 8193', () => {
    expect(parseTextKeys(text(`${'K'.repeat(63)}=1\0`)).ok).toBe(true);
    expect(parseTextKeys(text(`V=${'x'.repeat(8192)}\0`)).ok).toBe(true);
    const r = parseTextKeys(text(`V=${'x'.repeat(8193)}\0`));
    expect(r.ok ? undefined : r.error).toBe(TextError.VALUE_TOO_LONG);
  });

  it('rejects non-UTF-8 values', () => {
    const r = parseTextKeys(Buffer.concat([text('TargetAlias='), Buffer.from([0xc3, 0x28]), Buffer.of(0)]));
    expect(r.ok ? undefined : r.error).toBe(TextError.ENCODING);
  });

  it('bounds the total size (64 KiB value)', () => {
    const big = text(`TargetAlias=${'a'.repeat(65536)}\0`);
    const r = parseTextKeys(big);
    expect(r.ok ? undefined : r.error).toBe(TextError.TOO_LONG);
    const acc = new TextAccumulator(1024);
    expect(acc.push(Buffer.alloc(1000))).toBe(true);
    expect(acc.push(Buffer.alloc(25))).toBe(false);
    expect(acc.length).toBe(1000);
  });

  it('never throws and stays bounded on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.integer({ min: 0, max: 4096 }), (bytes, limit) => {
        const r = parseTextKeys(bytes, limit);
        if (r.ok) {
          expect(bytes.length).toBeLessThanOrEqual(limit);
          let size = 0;
          const keys = new Set<string>();
          for (const p of r.pairs) {
            size += Buffer.byteLength(p.key) + Buffer.byteLength(p.value) + 2;
            expect(keys.has(p.key)).toBe(false);
            keys.add(p.key);
          }
          expect(size).toBeLessThanOrEqual(bytes.length);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on text-like junk built from key fragments (property)', () => {
    const piece = fc.constantFrom('A', 'Key', '=', '\0', 'Yes', ',', '0x', 'é', '\xff', '==', 'CHAP_R');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 200 }), (parts) => {
        const r = parseTextKeys(Buffer.from(parts.join(''), 'latin1'));
        expect(typeof r.ok).toBe('boolean');
      }),
    );
  });
});

describe('value encodings', () => {
  it('parses numbers (RFC 7143 6.1)', () => {
    expect(parseNumber('0')).toBe(0);
    expect(parseNumber('262144')).toBe(262144);
    expect(parseNumber('0x40000')).toBe(262144);
    expect(parseNumber('0X1f')).toBe(31);
    for (const bad of ['', '-1', '01', '1.5', ' 1', '1 ', '0x', '12abc', '99999999999999999999', 'Yes']) {
      expect(parseNumber(bad)).toBeUndefined();
    }
  });

  it('parses booleans and lists', () => {
    expect(parseBoolean('Yes')).toBe(true);
    expect(parseBoolean('No')).toBe(false);
    expect(parseBoolean('yes')).toBeUndefined();
    expect(parseList('CRC32C,None')).toEqual(['CRC32C', 'None']);
    expect(parseList('a,,b,')).toEqual(['a', 'b']);
  });

  it('parses binary values: hex and base64', () => {
    expect(parseBinary('0x0102ff', 16)).toEqual(Buffer.from([1, 2, 255]));
    expect(parseBinary('0xabc', 16)).toEqual(Buffer.from([0x0a, 0xbc])); // implicit leading 0
    expect(parseBinary('0bAQL/', 16)).toEqual(Buffer.from([1, 2, 255]));
    expect(parseBinary('0b' + Buffer.alloc(16, 7).toString('base64'), 16)).toEqual(Buffer.alloc(16, 7));
    expect(parseBinary('0x' + 'aa'.repeat(17), 16)).toBeUndefined();
    expect(parseBinary('0b' + Buffer.alloc(17).toString('base64'), 16)).toBeUndefined();
    for (const bad of ['', '0x', '0xzz', '1234', '0bA', '0b!!!!'])
      expect(parseBinary(bad, 16)).toBeUndefined();
    expect(formatHex(Buffer.from([0, 0xab]))).toBe('0x00ab');
  });
});

import { describe, expect, it } from 'vitest';
import { formatSize, parseSize, SizeError } from '../../../src/supervisor/config/sizes.ts';

describe('parseSize', () => {
  it.each([
    [512, 512],
    ['512', 512],
    ['512B', 512],
    ['512KiB', 512 * 1024],
    ['1K', 1024],
    ['1Ki', 1024],
    ['1k', 1024],
    ['64MiB', 64 * 2 ** 20],
    ['64 MiB', 64 * 2 ** 20],
    ['64mib', 64 * 2 ** 20],
    ['1G', 2 ** 30],
    ['1GiB', 2 ** 30],
    ['1.5GiB', 1.5 * 2 ** 30],
    ['10GiB', 10 * 2 ** 30],
    ['2TiB', 2 * 2 ** 40],
    ['1P', 2 ** 50],
    ['  4KiB  ', 4096],
  ])('%j -> %d', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it.each([
    [0, 'positive whole number'],
    [-1, 'positive whole number'],
    [1.5, 'positive whole number'],
    [Number.NaN, 'positive whole number'],
    [2 ** 53, 'positive whole number'],
    ['0', 'greater than zero'],
    ['0.3KiB', 'whole number of bytes'],
    ['1GB', 'ambiguous size "1GB": spindle uses binary units only; write 1GiB (or 1G)'],
    ['10mb', 'ambiguous'],
    ['1X', 'invalid size'],
    ['GiB', 'invalid size'],
    ['-1GiB', 'invalid size'],
    ['1iB', '"i" must follow a unit letter'],
    ['', 'invalid size'],
    ['9999999P', 'whole number of bytes up to 2^53-1'],
    [true, 'must be a number of bytes or a string'],
    [null, 'must be a number of bytes or a string'],
    [{}, 'must be a number of bytes or a string'],
  ])('rejects %j', (input, message) => {
    expect(() => parseSize(input)).toThrow(SizeError);
    expect(() => parseSize(input)).toThrow(message);
  });
});

describe('formatSize', () => {
  it.each([
    [256 * 2 ** 20, '256MiB'],
    [2 ** 30, '1GiB'],
    [1536, '1536B'],
    [3 * 2 ** 40, '3TiB'],
    [4096, '4KiB'],
    [1000, '1000B'],
    [1536 * 1024, '1536KiB'],
  ])('%d -> %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it('round-trips through parseSize', () => {
    for (const n of [512, 4096, 3 * 2 ** 20, 7 * 2 ** 30 + 512, 2 ** 45]) {
      expect(parseSize(formatSize(n))).toBe(n);
    }
  });
});

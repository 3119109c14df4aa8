/** --pin-clients (bench/harness/placement.ts): which CPUs targets and clients get, and the command lines. */
import { afterEach, describe, expect, it } from 'vitest';
import { asClient, asTarget, placementFor, usePlacement } from '../../../bench/harness/placement.ts';

describe('placement', () => {
  afterEach(() => usePlacement(null));

  it('targets on CPU 0, clients on the rest; one core cannot be split', () => {
    expect(placementFor(2)).toEqual({ target: '0', clients: '1' });
    expect(placementFor(16)).toEqual({ target: '0', clients: '1-15' });
    expect(() => placementFor(1)).toThrow(/at least 2 cores/);
  });

  it('wraps commands in taskset only while a placement is set', () => {
    expect(asClient('qemu-img', ['bench', 'x'])).toEqual(['qemu-img', ['bench', 'x']]);
    expect(asTarget('tgtd', ['-f'])).toEqual(['tgtd', ['-f']]);
    usePlacement(placementFor(4));
    expect(asClient('qemu-img', ['bench', 'x'])).toEqual(['taskset', ['-c', '1-3', 'qemu-img', 'bench', 'x']]);
    expect(asTarget('tgtd', ['-f'])).toEqual(['taskset', ['-c', '0', 'tgtd', '-f']]);
  });
});

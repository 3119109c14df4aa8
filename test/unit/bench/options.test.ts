/** npm run bench's command line. */
import { describe, expect, it } from 'vitest';
import { parseOptions, type BenchOptions } from '../../../bench/options.ts';
import { WORKLOADS } from '../../../bench/workloads.ts';

function opts(...argv: string[]): BenchOptions {
  const p = parseOptions(argv);
  if (p.help) throw new Error('help');
  return p.options;
}

describe('parseOptions', () => {
  it('defaults: compare mode, 5 rounds of 4 s, ram, all six workloads, 10,000 latency commands', () => {
    const o = opts();
    expect(o).toMatchObject({
      mode: 'compare',
      quick: false,
      rounds: 5,
      targetSeconds: 4,
      backings: ['ram'],
      latencyCount: 10_000,
    });
    expect(o.workloads).toEqual(WORKLOADS);
  });

  it('--quick shortens everything; explicit values still win', () => {
    expect(opts('--quick')).toMatchObject({ rounds: 1, targetSeconds: 1, latencyCount: 2000 });
    expect(opts('--quick', '--rounds', '3')).toMatchObject({ rounds: 3, targetSeconds: 1 });
  });

  it('modes have their own defaults and exclude each other', () => {
    expect(opts('--scaling')).toMatchObject({ mode: 'scaling', rounds: 3, targetSeconds: 3 });
    expect(opts('--cluster')).toMatchObject({ mode: 'cluster', rounds: 5 });
    expect(() => parseOptions(['--scaling', '--cluster'])).toThrow(/give one/);
  });

  it('--pin-clients: off by default, on when given, in any mode', () => {
    expect(opts().pinClients).toBe(false);
    expect(opts('--pin-clients').pinClients).toBe(true);
    expect(opts('--scaling', '--pin-clients')).toMatchObject({ mode: 'scaling', pinClients: true });
  });

  it('backings: a list or all', () => {
    expect(opts('--backing', 'null,file').backings).toEqual(['null', 'file']);
    expect(opts('--backing', 'all').backings).toEqual(['ram', 'null', 'file']);
    expect(() => parseOptions(['--backing', 'disk'])).toThrow(/"disk" is not one of/);
  });

  it('workloads by name fragments', () => {
    expect(opts('--workload', 'qd1').workloads.map((w) => w.name)).toEqual([
      '4k random read QD1',
      '4k random write QD1',
    ]);
    expect(opts('--workload', '128k seq write QD8,random read qd32').workloads.map((w) => w.name)).toEqual([
      '4k random read QD32',
      '128k seq write QD8',
    ]);
    expect(() => parseOptions(['--workload', 'qd64'])).toThrow(/matches no workload/);
  });

  it('numbers must be positive (rounds an integer); --latency-count 0 turns the probe off', () => {
    expect(() => parseOptions(['--rounds', '0'])).toThrow(/--rounds must be a positive integer/);
    expect(() => parseOptions(['--rounds', '2.5'])).toThrow(/--rounds/);
    expect(() => parseOptions(['--seconds', 'x'])).toThrow(/--seconds must be a positive number/);
    expect(opts('--seconds', '0.5').targetSeconds).toBe(0.5);
    expect(opts('--latency-count', '0').latencyCount).toBe(0);
  });

  it('--help', () => {
    expect(parseOptions(['-h'])).toEqual({ help: true });
  });
});

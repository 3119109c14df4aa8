/** Command-line options of `npm run bench`, parsed and checked (pure: no I/O). */
import { parseArgs } from 'node:util';
import { BACKINGS, DEFAULT_LU_BYTES, type Backing } from './harness/backing.ts';
import { selectWorkloads, type Workload } from './workloads.ts';

export const USAGE = `usage: npm run bench -- [options]

  --rounds N          rounds; each runs every workload on both targets, alternating (default 5;
                      --scaling 3; --quick 1)
  --seconds S         length of each measured qemu-img run (default 4; --scaling 3; --quick 1)
  --backing LIST      ram, null, file or all, comma-separated (default ram)
  --workload LIST     workloads whose name contains one of these, e.g. "qd1" or "random write"
  --latency-count N   commands per latency-probe run (default 10000; --quick 2000; 0: none)
  --quick             smoke run: 1 round, 1 s runs, short probes
  --scaling           IOPS at 1/4/16 sessions, 1/8 LUs, spindle workers 1-2 x 1-2, and tgtd
  --cluster           spindle as a node of a two-node cluster (redis-server) vs embedded
  --pin-clients       targets on CPU 0, qemu-img and the probe on the other CPUs (taskset):
                      on a small machine the clients otherwise share the target's cores
  -h, --help

  npm run bench:check -- [--baseline bench/baseline.json] [--threshold 0.1] [result.json]
  npm run bench:baseline -- [result.json]`;

export type Mode = 'compare' | 'scaling' | 'cluster';

export interface BenchOptions {
  readonly mode: Mode;
  readonly quick: boolean;
  readonly rounds: number;
  readonly targetSeconds: number;
  readonly backings: readonly Backing[];
  readonly workloads: readonly Workload[];
  readonly latencyCount: number;
  readonly luBytes: number;
  /** --pin-clients: targets and clients on separate CPUs (harness/placement.ts). */
  readonly pinClients: boolean;
}

export type Parsed = { readonly help: true } | { readonly help: false; readonly options: BenchOptions };

function positiveNumber(name: string, v: string | undefined, dflt: number, integer: boolean): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0) || (integer && !Number.isInteger(n))) {
    throw new Error(
      `--${name} must be a positive ${integer ? 'integer' : 'number'}, not ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** Parses argv (without node and script); throws an Error naming the bad option. */
export function parseOptions(argv: readonly string[]): Parsed {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      backing: { type: 'string' },
      workload: { type: 'string' },
      'latency-count': { type: 'string' },
      quick: { type: 'boolean', default: false },
      scaling: { type: 'boolean', default: false },
      cluster: { type: 'boolean', default: false },
      'pin-clients': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true };
  if (values.scaling && values.cluster)
    throw new Error('--scaling and --cluster are separate runs: give one');
  const mode: Mode = values.scaling ? 'scaling' : values.cluster ? 'cluster' : 'compare';
  const quick = values.quick;

  const backingArg = values.backing ?? 'ram';
  const backings = backingArg === 'all' ? [...BACKINGS] : backingArg.split(',').map((b) => b.trim());
  for (const b of backings) {
    if (!(BACKINGS as readonly string[]).includes(b))
      throw new Error(`--backing: ${JSON.stringify(b)} is not one of ${BACKINGS.join(', ')}, all`);
  }
  const workloads = selectWorkloads(values.workload);
  if (workloads.length === 0)
    throw new Error(`--workload ${JSON.stringify(values.workload)} matches no workload`);

  const defaultRounds = quick ? 1 : mode === 'scaling' ? 3 : 5;
  const defaultSeconds = quick ? 1 : mode === 'scaling' ? 3 : 4;
  const latencyArg = values['latency-count'];
  const latencyCount =
    latencyArg === '0' ? 0 : positiveNumber('latency-count', latencyArg, quick ? 2000 : 10_000, true);
  return {
    help: false,
    options: {
      mode,
      quick,
      rounds: positiveNumber('rounds', values.rounds, defaultRounds, true),
      targetSeconds: positiveNumber('seconds', values.seconds, defaultSeconds, false),
      backings: backings as Backing[],
      workloads,
      latencyCount,
      luBytes: DEFAULT_LU_BYTES,
      pinClients: values['pin-clients'],
    },
  };
}

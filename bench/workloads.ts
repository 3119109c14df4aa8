/**
 * The six workloads, the same for qemu-img bench and the latency probe.
 *
 * `qemu-img bench` only walks the image from an offset by a fixed step, wrapping at the
 * end of the image; it has no random mode. Random I/O is emulated with a step of a prime
 * number of blocks (7919 x 4 KiB): a prime is coprime with the power-of-two block count of
 * every LU here, so the walk visits every block once per cycle in an order with no
 * locality (each request lands ~31 MiB from the previous one on a 1 GiB LU), which
 * defeats sequential detection and merging the way random I/O does, while staying
 * reproducible. The latency probe walks the same way.
 */

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** 4 KiB blocks between consecutive random requests: prime. */
export const RANDOM_STEP_BLOCKS = 7919;

export interface Workload {
  readonly name: string;
  readonly write: boolean;
  /** Bytes per request. */
  readonly size: number;
  readonly depth: number;
  /** Bytes between consecutive request offsets. */
  readonly step: number;
}

const random = (write: boolean, depth: number): Workload => ({
  name: `4k random ${write ? 'write' : 'read'} QD${depth}`,
  write,
  size: 4 * KiB,
  depth,
  step: RANDOM_STEP_BLOCKS * 4 * KiB,
});

export const RANDOM_READ_QD1 = random(false, 1);
export const RANDOM_READ_QD32 = random(false, 32);
export const RANDOM_WRITE_QD1 = random(true, 1);
export const RANDOM_WRITE_QD32 = random(true, 32);
export const SEQ_READ_QD8: Workload = {
  name: '128k seq read QD8',
  write: false,
  size: 128 * KiB,
  depth: 8,
  step: 128 * KiB,
};
export const SEQ_WRITE_QD8: Workload = {
  name: '128k seq write QD8',
  write: true,
  size: 128 * KiB,
  depth: 8,
  step: 128 * KiB,
};

export const WORKLOADS: readonly Workload[] = [
  RANDOM_READ_QD1,
  RANDOM_READ_QD32,
  RANDOM_WRITE_QD1,
  RANDOM_WRITE_QD32,
  SEQ_READ_QD8,
  SEQ_WRITE_QD8,
];

/** Workloads the latency probe also runs: the 4k ones (QD1 is the per-command path itself). */
export function hasLatencyProbe(w: Workload): boolean {
  return w.size === 4 * KiB;
}

/** Workloads by name or by a case-insensitive fragment ("qd1", "write"). */
export function selectWorkloads(filter: string | undefined): Workload[] {
  if (filter === undefined) return [...WORKLOADS];
  const parts = filter
    .split(',')
    .map((p) => p.trim().toLowerCase())
    .filter((p) => p.length > 0);
  return WORKLOADS.filter((w) =>
    parts.some((p) => w.name.toLowerCase() === p || w.name.toLowerCase().includes(p)),
  );
}

/** Write pattern byte for qemu-img (--pattern) and the probe: non-zero, so no target can shortcut zero writes. */
export const WRITE_PATTERN = 0xa5;

/**
 * The latency probe: its own process (so the bench's event loop never delays a
 * completion), one iSCSI session through the lean initiator of probe/iscsi-client.ts,
 * a fixed number of commands at a fixed queue depth, each timed from send to status.
 * Prints one JSON line: the latency summary (µs) and the rate it ran at.
 *
 *   node bench/latency-probe.ts --host 127.0.0.1 --port 3260 --iqn IQN --lun 0 \
 *     --op read|write|pr-register --size 4096 --depth 1 --step 32436224 --count 20000
 *
 * READ(10) and WRITE(10) walk the LU by `--step` bytes from offset 0, wrapping at its
 * capacity, like qemu-img bench. pr-register sends PERSISTENT RESERVE OUT REGISTER with a
 * new key each time (QD1), and unregisters at the end.
 */
import { parseArgs } from 'node:util';
import { latencySummary } from './analysis/stats.ts';
import { LeanInitiator, ProbeOp, type LoopSpec } from './probe/iscsi-client.ts';

export interface ProbeOutput {
  readonly op: ProbeOp;
  readonly size: number;
  readonly depth: number;
  readonly count: number;
  readonly warmup: number;
  readonly seconds: number;
  readonly iops: number;
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly minUs: number;
  readonly maxUs: number;
  readonly negotiated: unknown;
  readonly blockSize: number;
  readonly capacityBytes: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      iqn: { type: 'string' },
      lun: { type: 'string', default: '0' },
      op: { type: 'string', default: 'read' },
      size: { type: 'string', default: '4096' },
      depth: { type: 'string', default: '1' },
      step: { type: 'string', default: '4096' },
      count: { type: 'string', default: '10000' },
      warmup: { type: 'string' },
      'initiator-name': { type: 'string', default: 'iqn.2026-11.io.spindle:bench-probe' },
    },
  });
  if (values.port === undefined || values.iqn === undefined) throw new Error('--port and --iqn are required');
  const op = values.op as ProbeOp;
  if (!(Object.values(ProbeOp) as string[]).includes(op))
    throw new Error(`--op must be one of ${Object.values(ProbeOp).join(', ')}`);
  const count = Number(values.count);
  const spec: LoopSpec = {
    op,
    size: Number(values.size),
    depth: Number(values.depth),
    step: Number(values.step),
    count,
    warmup: values.warmup !== undefined ? Number(values.warmup) : Math.min(2000, Math.ceil(count / 10)),
  };

  const ini = await LeanInitiator.connect(values.host, Number(values.port), Number(values.lun));
  try {
    const negotiated = await ini.login(values['initiator-name'], values.iqn);
    await ini.untilReady();
    const capacity = op === ProbeOp.PR_REGISTER ? { bytes: 0, blockSize: 512 } : await ini.readCapacity();
    const r = await ini.run(spec, capacity);
    if (op === ProbeOp.PR_REGISTER) {
      const last = ini.lastRegisteredKey;
      if (last !== undefined) await ini.prRegister(last, { hi: 0, lo: 0 }); // leave no registration behind
    }
    await ini.logout();
    const lat = latencySummary(r.samplesNs, spec.count);
    const out: ProbeOutput = {
      op,
      size: op === ProbeOp.PR_REGISTER ? 24 : spec.size,
      depth: spec.depth,
      count: spec.count,
      warmup: spec.warmup,
      seconds: r.seconds,
      iops: spec.count / r.seconds,
      meanUs: lat.meanUs,
      p50Us: lat.p50Us,
      p99Us: lat.p99Us,
      minUs: lat.minUs,
      maxUs: lat.maxUs,
      negotiated,
      blockSize: capacity.blockSize,
      capacityBytes: capacity.bytes,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    ini.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`latency-probe: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

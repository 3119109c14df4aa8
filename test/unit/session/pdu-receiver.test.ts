/**
 * PduReceiver framing (RFC 7143 11.2): BHS, AHS, header digest, data segment with its
 * padding and data digest, routed to the control buffer, a task's buffer at an offset, or
 * dropped. Every case is fed whole, byte by byte and in seeded random splits (fast-check,
 * shrinking to the smallest failing split), and every way must give the same callbacks
 * and the same bytes in the same places as a model computed from the PDU specs alone.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BHS_LENGTH, putU32 } from '../../../src/shared/iscsi/pdu.ts';
import { crc32c } from '../../../src/shared/iscsi/digest.ts';
import { DataRoute, PduReceiver, type PduSink } from '../../../src/workers/session/iscsi/pdu-receiver.ts';
import { framePdu } from '../../helpers/pdu-stream.ts';

/** Control buffer size (the connection sizes it to its MaxRecvDataSegmentLength). */
const CTRL = 8192;
/** The "task buffer" data can be routed into. */
const TASK_BYTES = 256 * 1024;
const SEED = 0x5eed_0117;

type Route = 'control' | 'task' | 'discard';

interface PduSpec {
  opcode: number;
  ahsWords: number;
  dsl: number;
  /** Byte pattern of the data segment (and of the AHS). */
  fill: number;
  route: Route;
  /** Where in the task buffer the data goes (route 'task'). */
  taskOffset: number;
  corruptHeaderDigest?: boolean;
  corruptDataDigest?: boolean;
  /** DataSegmentLength field value if it should differ from dsl (oversize announcements). */
  announcedDsl?: number;
}

interface StreamSpec {
  headerDigest: boolean;
  dataDigest: boolean;
  pdus: PduSpec[];
}

const ROUTE_CODE: Record<Route, number> = { control: 0, task: 1, discard: 2 };

function pattern(n: number, fill: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (fill + i * 7) & 0xff;
  return b;
}

/** The BHS carries its route in the ITT (byte 16: route, 17..19: task offset / 4). */
function bhsOf(p: PduSpec): Buffer {
  const b = Buffer.alloc(BHS_LENGTH);
  b[0] = p.opcode;
  b[1] = 0x80;
  putU32(b, 16, (ROUTE_CODE[p.route] << 24) | (p.taskOffset >>> 2));
  b[47] = p.fill; // something in the last BHS byte, to see it arrive
  return b;
}

function frame(s: StreamSpec, p: PduSpec): Buffer {
  const bhs = bhsOf(p);
  const data = pattern(p.dsl, p.fill);
  if (p.announcedDsl !== undefined) {
    bhs[5] = p.announcedDsl >>> 16;
    bhs[6] = p.announcedDsl >>> 8;
    bhs[7] = p.announcedDsl;
  }
  return framePdu(bhs, data, {
    ahs: pattern(p.ahsWords * 4, p.fill ^ 0x55),
    headerDigest: s.headerDigest,
    dataDigest: s.dataDigest,
    corruptHeaderDigest: p.corruptHeaderDigest,
    corruptDataDigest: p.corruptDataDigest,
    keepDsl: p.announcedDsl !== undefined,
  });
}

function streamBytes(s: StreamSpec): Buffer {
  return Buffer.concat(s.pdus.map((p) => frame(s, p)));
}

const hex = (b: Buffer): string => `${b.length}:${crc32c(b).toString(16)}`;

/**
 * A sink acting as the connection does: routes each data segment as the ITT says, stops
 * receiving on a header digest error or a data segment larger than it accepts, and
 * records every callback with what the receiver exposes at that moment.
 */
class RecordingSink implements PduSink {
  receiving = true;
  readonly events: string[] = [];
  /** A task's data buffer: a view of shared memory, as slab buffers are. */
  readonly task = Buffer.from(new SharedArrayBuffer(TASK_BYTES)).fill(0xee);
  rx!: PduReceiver;
  private route: Route = 'control';
  private offset = 0;
  digestErrors = 0;

  onHeader(): void {
    const rx = this.rx;
    const h = rx.hdr;
    const ahs = h[4]! * 4;
    this.events.push(`H ${hex(h.subarray(0, BHS_LENGTH + ahs))} dsl=${rx.dsl} route=${rx.route}`);
    if (rx.dsl > CTRL && h[16] !== ROUTE_CODE.discard) {
      // What the connection does with DataSegmentLength > MaxRecvDataSegmentLength.
      this.events.push('oversize');
      this.receiving = false;
      return;
    }
    this.route = (['control', 'task', 'discard'] as const)[h[16]!]!;
    this.offset = ((h[17]! << 16) | (h[18]! << 8) | h[19]!) * 4;
    if (this.route === 'task') rx.into(DataRoute.DATA_OUT, this.task, this.offset);
    else if (this.route === 'discard') rx.discard();
  }

  onHeaderDigestError(): void {
    if (++this.digestErrors > 1) throw new Error('header digest error reported twice');
    this.events.push('header digest error');
    this.receiving = false;
  }

  onPdu(ok: boolean): void {
    const rx = this.rx;
    const dsl = rx.dsl;
    let data = '';
    if (this.route === 'control') data = hex(rx.ctrl.subarray(0, dsl));
    else if (this.route === 'task')
      data = `task@${this.offset} ${hex(this.task.subarray(this.offset, this.offset + dsl))}`;
    this.events.push(`P ok=${ok} route=${rx.route} ${data}`);
  }
}

interface Outcome {
  events: string[];
  task: string;
}

function run(s: StreamSpec, chunks: Buffer[]): Outcome {
  const sink = new RecordingSink();
  const rx = new PduReceiver(sink, CTRL);
  sink.rx = rx;
  rx.headerDigest = s.headerDigest;
  rx.dataDigest = s.dataDigest;
  for (const c of chunks) rx.feed(c);
  return { events: sink.events, task: hex(sink.task) };
}

/** What the receiver must report, from the specs alone. */
function model(s: StreamSpec): Outcome {
  const events: string[] = [];
  const task = Buffer.alloc(TASK_BYTES, 0xee);
  const routeValue = { control: DataRoute.CONTROL, task: DataRoute.DATA_OUT, discard: DataRoute.DISCARD };
  for (const p of s.pdus) {
    const header = frame({ ...s, headerDigest: false, dataDigest: false }, { ...p, dsl: 0 }).subarray(
      0,
      BHS_LENGTH + p.ahsWords * 4,
    );
    // The model's header has dsl 0 from framing above: put the announced length back.
    const dsl = p.announcedDsl ?? p.dsl;
    header[5] = dsl >>> 16;
    header[6] = dsl >>> 8;
    header[7] = dsl;
    if (s.headerDigest && p.corruptHeaderDigest) {
      events.push('header digest error');
      break;
    }
    events.push(`H ${hex(header)} dsl=${dsl} route=${DataRoute.CONTROL}`);
    if (dsl > CTRL && p.route !== 'discard') {
      events.push('oversize');
      break;
    }
    const data = pattern(p.dsl, p.fill);
    const ok = !(s.dataDigest && p.dsl > 0 && p.corruptDataDigest);
    let shown = '';
    if (p.route === 'control') shown = hex(data);
    else if (p.route === 'task') {
      data.copy(task, p.taskOffset);
      shown = `task@${p.taskOffset} ${hex(data)}`;
    }
    events.push(`P ok=${ok} route=${routeValue[p.route]} ${shown}`);
  }
  return { events, task: hex(task) };
}

function bytewise(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i++) out.push(b.subarray(i, i + 1));
  return out;
}

function splitAt(b: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(b.subarray(at, p)); // empty chunks included: feed() must accept them
    at = p;
  }
  out.push(b.subarray(at));
  return out;
}

const pdu = (o: Partial<PduSpec>): PduSpec => ({
  opcode: 0x00,
  ahsWords: 0,
  dsl: 0,
  fill: 0x11,
  route: 'control',
  taskOffset: 0,
  ...o,
});

const plain = (pdus: PduSpec[]): StreamSpec => ({ headerDigest: false, dataDigest: false, pdus });
const digests = (pdus: PduSpec[], headerDigest = true, dataDigest = true): StreamSpec => ({
  headerDigest,
  dataDigest,
  pdus,
});

/** Named framing cases; every one also ends in a check that nothing is left half-read. */
const CASES: Array<[string, StreamSpec]> = [
  ['BHS only', plain([pdu({})])],
  ['BHS only, twice back to back', plain([pdu({ fill: 1 }), pdu({ fill: 2 })])],
  ['data, a multiple of 4, into the control buffer', plain([pdu({ opcode: 0x04, dsl: 64 })])],
  [
    'data needing 1, 2 and 3 bytes of padding',
    plain([pdu({ dsl: 3 }), pdu({ dsl: 2, fill: 9 }), pdu({ dsl: 1, fill: 5 })]),
  ],
  ['AHS of one word', plain([pdu({ opcode: 0x01, ahsWords: 1, dsl: 8 })])],
  ['AHS of the maximum 255 words (1020 bytes)', plain([pdu({ opcode: 0x01, ahsWords: 255, dsl: 5 })])],
  ['header digest, BHS only', digests([pdu({})], true, false)],
  [
    'header digest after an AHS of 255 words (largest header)',
    digests([pdu({ ahsWords: 255, dsl: 1 })], true, false),
  ],
  ['data digest over data and padding', digests([pdu({ dsl: 13 }), pdu({ dsl: 16, fill: 3 })], false, true)],
  [
    'data digest on, no data segment: no data digest either',
    digests([pdu({}), pdu({ dsl: 4 })], false, true),
  ],
  ['both digests, AHS and padded data', digests([pdu({ ahsWords: 3, dsl: 1021 }), pdu({ dsl: 7, fill: 8 })])],
  [
    'data into a task buffer at an offset',
    plain([pdu({ opcode: 0x05, dsl: 4096, route: 'task', taskOffset: 8192 })]),
  ],
  [
    'task buffer and control buffer interleaved, with digests',
    digests([
      pdu({ opcode: 0x01, dsl: 1000, route: 'task', taskOffset: 0 }),
      pdu({ opcode: 0x04, dsl: 300, fill: 0x42 }),
      pdu({ opcode: 0x05, dsl: 8191, route: 'task', taskOffset: 1000, fill: 0x99 }),
    ]),
  ],
  ['data read and dropped (discard)', digests([pdu({ dsl: 777, route: 'discard' }), pdu({ dsl: 4 })])],
  [
    'a discarded data segment larger than the control buffer',
    plain([pdu({ dsl: 3 * CTRL + 1, route: 'discard' }), pdu({})]),
  ],
  ['the largest data segment the control buffer takes', digests([pdu({ opcode: 0x04, dsl: CTRL }), pdu({})])],
  [
    'the largest task data segment here (64 KiB)',
    digests([pdu({ opcode: 0x05, dsl: 65536, route: 'task', taskOffset: 4 })]),
  ],
  [
    'a bad header digest: reported once, nothing after it is read',
    digests(
      [pdu({ dsl: 8 }), pdu({ ahsWords: 2, dsl: 12, corruptHeaderDigest: true }), pdu({ fill: 3 })],
      true,
      false,
    ),
  ],
  [
    'a bad data digest: reported with the PDU, framing goes on',
    digests([pdu({ dsl: 10, corruptDataDigest: true }), pdu({ dsl: 20, fill: 4 })], false, true),
  ],
  [
    'a bad data digest on task data: the bytes are there, flagged bad',
    digests([
      pdu({ opcode: 0x05, dsl: 5000, route: 'task', taskOffset: 64, corruptDataDigest: true }),
      pdu({}),
    ]),
  ],
  [
    'an oversize data segment: the sink stops at the header, the rest is ignored',
    plain([pdu({ dsl: 4 }), pdu({ dsl: 8, announcedDsl: 0xffffff }), pdu({ fill: 6 })]),
  ],
];

describe('PduReceiver framing', () => {
  describe.each(CASES)('%s', (_name, s) => {
    const bytes = streamBytes(s);
    const want = model(s);

    it('fed whole', () => {
      expect(run(s, [bytes])).toEqual(want);
    });

    it('fed byte by byte', () => {
      expect(run(s, bytewise(bytes))).toEqual(want);
    });

    it('fed in random splits', () => {
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 24 }), (cuts) => {
          expect(run(s, splitAt(bytes, cuts))).toEqual(want);
        }),
        { seed: SEED, numRuns: 60 },
      );
    });
  });

  it('exposes the BHS, the AHS and the data segment length at the header stage', () => {
    const s = digests([pdu({ opcode: 0x01, ahsWords: 4, dsl: 9, fill: 0x21 })]);
    const bytes = streamBytes(s);
    const seen: Buffer[] = [];
    let dsl = -1;
    const rx = new PduReceiver(
      {
        receiving: true,
        onHeader: () => {
          seen.push(Buffer.from(rx.hdr.subarray(0, BHS_LENGTH + 16 + 4)));
          dsl = rx.dsl;
        },
        onHeaderDigestError: () => {
          throw new Error('unexpected');
        },
        onPdu: () => {},
      },
      CTRL,
    );
    rx.headerDigest = true;
    rx.dataDigest = true;
    rx.feed(bytes);
    expect(dsl).toBe(9);
    // BHS, 16 bytes of AHS, then the header digest, exactly as sent.
    expect(seen[0]).toEqual(bytes.subarray(0, BHS_LENGTH + 16 + 4));
    expect(rx.ctrl.subarray(0, 9)).toEqual(pattern(9, 0x21));
  });

  it('stops for good after a header digest error, even if the sink keeps receiving', () => {
    // The stream cannot be resynchronised after a bad header (RFC 7143 7.8); the
    // receiver must not depend on its sink closing to stop reporting the same header.
    const s = digests([pdu({ corruptHeaderDigest: true }), pdu({})], true, false);
    let errors = 0;
    let pdus = 0;
    const rx = new PduReceiver(
      {
        receiving: true,
        onHeader: () => {},
        onHeaderDigestError: () => {
          if (++errors > 1) throw new Error('header digest error reported again');
        },
        onPdu: () => void pdus++,
      },
      CTRL,
    );
    rx.headerDigest = true;
    const bytes = streamBytes(s);
    rx.feed(bytes.subarray(0, 60));
    rx.feed(bytes.subarray(60));
    rx.feed(bytes);
    expect(errors).toBe(1);
    expect(pdus).toBe(0);
  });

  it('stops in the middle of a chunk when the sink closes at the PDU stage', () => {
    const s = plain([pdu({ dsl: 4 }), pdu({ dsl: 4, fill: 2 }), pdu({ dsl: 4, fill: 3 })]);
    let pdus = 0;
    const sink = {
      receiving: true,
      onHeader: () => {},
      onHeaderDigestError: () => {},
      onPdu: () => {
        if (++pdus === 2) sink.receiving = false;
      },
    };
    const rx = new PduReceiver(sink, CTRL);
    rx.feed(streamBytes(s));
    expect(pdus).toBe(2);
  });

  describe('random PDU streams', () => {
    const pduArb: fc.Arbitrary<PduSpec> = fc.record({
      opcode: fc.constantFrom(0x00, 0x01, 0x04, 0x05),
      ahsWords: fc.oneof(
        { arbitrary: fc.constant(0), weight: 3 },
        { arbitrary: fc.integer({ min: 1, max: 255 }), weight: 1 },
      ),
      dsl: fc.oneof(
        { arbitrary: fc.constant(0), weight: 2 },
        { arbitrary: fc.integer({ min: 1, max: 64 }), weight: 3 },
        { arbitrary: fc.integer({ min: 65, max: CTRL }), weight: 1 },
      ),
      fill: fc.nat(255),
      route: fc.constantFrom<Route>('control', 'task', 'discard'),
      taskOffset: fc.nat((TASK_BYTES - CTRL) / 4).map((w) => w * 4),
      corruptHeaderDigest: fc.oneof(
        { arbitrary: fc.constant(false), weight: 15 },
        { arbitrary: fc.constant(true), weight: 1 },
      ),
      corruptDataDigest: fc.oneof(
        { arbitrary: fc.constant(false), weight: 6 },
        { arbitrary: fc.constant(true), weight: 1 },
      ),
    });
    const streamArb: fc.Arbitrary<StreamSpec> = fc.record({
      headerDigest: fc.boolean(),
      dataDigest: fc.boolean(),
      pdus: fc.array(pduArb, { minLength: 1, maxLength: 8 }),
    });

    it('give the model outcome whole, byte by byte and in any split', () => {
      fc.assert(
        fc.property(streamArb, fc.array(fc.nat(), { maxLength: 32 }), (s, cuts) => {
          const bytes = streamBytes(s);
          const want = model(s);
          expect(run(s, [bytes])).toEqual(want);
          expect(run(s, splitAt(bytes, cuts))).toEqual(want);
          if (bytes.length <= 4096) expect(run(s, bytewise(bytes))).toEqual(want);
        }),
        { seed: SEED, numRuns: 300 },
      );
    });
  });
});

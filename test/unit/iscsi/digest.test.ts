import { describe, expect, it } from 'vitest';
import { crc32c, readDigest, writeDigest } from '../../../src/shared/iscsi/digest.ts';

/** Bitwise reference CRC-32C (reflected poly 0x82F63B78, init ~0, final xor ~0). */
function referenceCrc32c(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return ~c >>> 0;
}

function seeded(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x;
  }
  return b;
}

const ascending = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const descending = Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i));
// RFC 3720 B.4 / RFC 7143 Appendix B: the BHS of an iSCSI READ(10) SCSI Command PDU.
const readPdu = Buffer.from(
  '01c00000000000000000000000000000' +
    '14000000000004000000001400000018' +
    '28000000000000000200000000000000',
  'hex',
);

describe('crc32c known answers', () => {
  it.each([
    ['"123456789"', Buffer.from('123456789', 'ascii'), 0xe3069283, [0x83, 0x92, 0x06, 0xe3]],
    ['32 bytes of 0x00', Buffer.alloc(32, 0), 0x8a9136aa, [0xaa, 0x36, 0x91, 0x8a]],
    ['32 bytes of 0xFF', Buffer.alloc(32, 0xff), 0x62a8ab43, [0x43, 0xab, 0xa8, 0x62]],
    ['32 ascending bytes 0..31', ascending, 0x46dd794e, [0x4e, 0x79, 0xdd, 0x46]],
    ['32 descending bytes 31..0', descending, 0x113fdb5c, [0x5c, 0xdb, 0x3f, 0x11]],
    ['READ(10) command BHS', readPdu, 0xd9963a56, [0x56, 0x3a, 0x96, 0xd9]],
  ])('%s', (_name, data, value, wire) => {
    expect(readPdu.length).toBe(48);
    const crc = crc32c(data);
    expect(crc).toBe(value);
    expect(crc).toBe(referenceCrc32c(data));
    // On the wire the digest is least significant byte first (the RFC lists these bytes).
    const out = new Uint8Array(4);
    writeDigest(out, 0, crc);
    expect([...out]).toEqual(wire);
    expect(readDigest(Uint8Array.from(wire), 0)).toBe(value);
  });

  it('of the empty buffer is 0', () => {
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('is always an unsigned 32-bit integer', () => {
    for (let n = 0; n < 64; n++) {
      const c = crc32c(seeded(n, 77 + n));
      expect(Number.isInteger(c)).toBe(true);
      expect(c).toBeGreaterThanOrEqual(0);
      expect(c).toBeLessThanOrEqual(0xffffffff);
    }
  });

  it('matches the bitwise reference on random data of many lengths', () => {
    for (let n = 1; n < 300; n += 7) {
      const b = seeded(n, 1000 + n);
      expect(crc32c(b)).toBe(referenceCrc32c(b));
    }
  });
});

describe('crc32c ranges and chaining', () => {
  const data = seeded(1000, 0xdeadbeef);

  it('covers exactly buf[start, end)', () => {
    const framed = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from('123456789'), Buffer.from([9, 9])]);
    expect(crc32c(framed, 3, 12)).toBe(0xe3069283);
    expect(crc32c(framed, 3)).toBe(crc32c(framed.subarray(3)));
    expect(crc32c(data, 100, 100)).toBe(0);
    expect(crc32c(data, 10, 500)).toBe(referenceCrc32c(data.subarray(10, 500)));
  });

  it('continues from a seed: crc(A) seeded into B equals crc(A + B), at every split point', () => {
    const whole = crc32c(data, 0, 200);
    for (let cut = 0; cut <= 200; cut++) {
      const a = crc32c(data, 0, cut);
      expect(crc32c(data, cut, 200, a)).toBe(whole);
    }
  });

  it('chains over many pieces (data segment received in chunks)', () => {
    let crc = 0;
    const cuts = [0, 1, 5, 48, 49, 300, 301, 777, 1000];
    for (let i = 1; i < cuts.length; i++) crc = crc32c(data, cuts[i - 1], cuts[i], crc);
    expect(crc).toBe(crc32c(data));
    expect(crc).toBe(referenceCrc32c(data));
  });

  it('chains with separate buffers', () => {
    const a = Buffer.from('1234');
    const b = Buffer.from('56789');
    expect(crc32c(b, 0, b.length, crc32c(a))).toBe(0xe3069283);
  });
});

describe('writeDigest / readDigest', () => {
  it('write least significant byte first at the given offset, touching only 4 bytes', () => {
    const b = new Uint8Array(10).fill(0xee);
    writeDigest(b, 3, 0x12345678);
    expect([...b]).toEqual([0xee, 0xee, 0xee, 0x78, 0x56, 0x34, 0x12, 0xee, 0xee, 0xee]);
    expect(readDigest(b, 3)).toBe(0x12345678);
  });

  it('round-trip values with the top bit set as unsigned numbers', () => {
    const b = new Uint8Array(8);
    for (const v of [0, 1, 0xff, 0x100, 0x7fffffff, 0x80000000, 0xe3069283, 0xfffffffe, 0xffffffff]) {
      writeDigest(b, 2, v);
      expect(readDigest(b, 2)).toBe(v);
    }
    writeDigest(b, 0, 0xffffffff);
    expect([...b.subarray(0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });

  it('round-trip random values at odd offsets', () => {
    const b = new Uint8Array(16);
    let x = 0x2468ace0;
    for (let i = 0; i < 1000; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      const o = i % 12;
      writeDigest(b, o, x);
      expect(readDigest(b, o)).toBe(x);
      expect(b[o]).toBe(x & 0xff);
      expect(b[o + 3]).toBe(x >>> 24);
    }
  });

  it('a digest appended to the data verifies (header digest over a BHS)', () => {
    const pdu = Buffer.alloc(52);
    readPdu.copy(pdu, 0);
    writeDigest(pdu, 48, crc32c(pdu, 0, 48));
    expect([...pdu.subarray(48)]).toEqual([0x56, 0x3a, 0x96, 0xd9]);
    expect(readDigest(pdu, 48)).toBe(crc32c(pdu, 0, 48));
    pdu[17]! ^= 0x01; // one flipped bit in the ITT
    expect(readDigest(pdu, 48)).not.toBe(crc32c(pdu, 0, 48));
  });
});

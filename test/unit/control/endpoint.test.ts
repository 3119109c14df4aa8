/**
 * The typed control channel (src/shared/control/): requests and replies pair by id,
 * bodies and results are checked against the protocol's shapes, errors cross with their
 * code, requests time out, closing fails what is pending, handles move by transfer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MessageChannel } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import { sideA, sideB, type Protocol, type Side } from '../../../src/shared/control/endpoint.ts';
import { ControlError, ControlErrorCode } from '../../../src/shared/control/errors.ts';
import { EMPTY, arrayOf, checkShape, literal, object, optional, tuple } from '../../../src/shared/control/shape.ts';

const TEST = {
  name: 'test',
  a: {
    requests: {},
    notes: { hello: object({ n: 'integer' }) },
  },
  b: {
    requests: {
      add: { body: object({ x: 'number', y: 'number' }), result: object({ sum: 'number' }) },
      fail: { body: object({ code: optional('string') }), result: 'void' },
      slow: { body: EMPTY, result: 'void' },
      liar: { body: EMPTY, result: object({ ok: 'boolean' }) },
    },
    notes: { ping: object({ seq: 'integer' }) },
    handles: { buffer: object({ label: 'string' }) },
  },
} as const satisfies Protocol<Side, Side>;

const channels: MessageChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) {
    c.port1.close();
    c.port2.close();
  }
});

function pair() {
  const ch = new MessageChannel();
  channels.push(ch);
  const seen = { pings: [] as number[], hellos: [] as number[], buffers: [] as [string, unknown][], problems: [] as string[] };
  const b = sideB(TEST, ch.port2, {
    requests: {
      add: (m) => ({ sum: m.x + m.y }),
      fail: (m) => {
        throw Object.assign(new Error('it broke'), m.code === undefined ? {} : { code: m.code });
      },
      slow: () => new Promise<void>(() => {}),
      liar: () => ({ ok: 'yes' }) as unknown as { ok: boolean },
    },
    notes: { ping: (m) => seen.pings.push(m.seq) },
    handles: { buffer: (m, h) => seen.buffers.push([m.label, h]) },
  });
  const a = sideA(TEST, ch.port1, { requests: {}, notes: { hello: (m) => seen.hellos.push(m.n) } });
  b.onProtocolError = (p) => seen.problems.push(p);
  a.onProtocolError = (p) => seen.problems.push(p);
  return { a, b, seen, ch };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('control endpoint', () => {
  it('pairs requests with replies by id, also when answered out of order', async () => {
    const { a } = pair();
    const results = await Promise.all([a.request('add', { x: 1, y: 2 }), a.request('add', { x: 40, y: 2 })]);
    expect(results).toEqual([{ sum: 3 }, { sum: 42 }]);
    expect(a.pendingRequests).toBe(0);
  });

  it('delivers notifications both ways', async () => {
    const { a, b, seen } = pair();
    a.notify('ping', { seq: 7 });
    b.notify('hello', { n: 9 });
    await tick();
    expect(seen.pings).toEqual([7]);
    expect(seen.hellos).toEqual([9]);
  });

  it('a handler error crosses with its code; one without a code is ERR_SPINDLE_INTERNAL', async () => {
    const { a } = pair();
    await expect(a.request('fail', { code: 'ERR_SPINDLE_BACKING' })).rejects.toMatchObject({ name: 'ControlError', code: 'ERR_SPINDLE_BACKING', message: 'it broke' });
    await expect(a.request('fail', {})).rejects.toMatchObject({ code: ControlErrorCode.INTERNAL });
  });

  it('times out a request nobody answers, and ignores the late answer', async () => {
    const { a } = pair();
    const err = await a.request('slow', {}, 30).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect((err as ControlError).code).toBe(ControlErrorCode.TIMEOUT);
    expect(a.pendingRequests).toBe(0);
  });

  it('close() fails pending requests at once with ERR_CONTROL_CLOSED, and later ones too', async () => {
    const { a } = pair();
    const p = a.request('slow', {}, 10_000);
    a.close('worker exited');
    await expect(p).rejects.toMatchObject({ code: ControlErrorCode.CLOSED });
    await expect(a.request('add', { x: 1, y: 1 })).rejects.toMatchObject({ code: ControlErrorCode.CLOSED });
  });

  it('refuses a request whose body does not match its shape, naming the field', async () => {
    const { a, seen } = pair();
    const bad = a.request('add', { x: 1, y: 'two' } as unknown as { x: number; y: number });
    await expect(bad).rejects.toMatchObject({ code: ControlErrorCode.MALFORMED });
    await expect(bad).rejects.toThrow(/body\.y: expected number/);
    expect(seen.problems.some((p) => p.includes('body.y'))).toBe(true);
  });

  it('refuses a result that does not match its shape', async () => {
    const { a } = pair();
    await expect(a.request('liar', {})).rejects.toMatchObject({ code: ControlErrorCode.MALFORMED });
  });

  it('answers an unknown request type with ERR_CONTROL_UNSUPPORTED, and reports junk frames', async () => {
    const { ch, seen } = pair();
    const packr = new Packr({ useRecords: false });
    const replies: unknown[] = [];
    ch.port1.on('message', (m: Uint8Array) => replies.push(packr.unpack(m)));
    ch.port1.postMessage(packr.pack([0, 1, 'nope', {}]));
    ch.port1.postMessage(packr.pack({ not: 'a frame' }));
    ch.port1.postMessage(packr.pack([3, 'ping', { seq: 'x' }]));
    ch.port1.postMessage(Uint8Array.of(0xc1)); // never valid msgpack
    await tick();
    expect(replies).toContainEqual([2, 1, ControlErrorCode.UNSUPPORTED, expect.stringContaining('nope')]);
    expect(seen.problems.length).toBeGreaterThanOrEqual(3);
    expect(seen.pings).toEqual([]);
  });

  it('moves a transferable handle with a checked body', async () => {
    const { a, seen } = pair();
    const ab = new ArrayBuffer(16);
    a.transfer('buffer', { label: 'x' }, ab);
    expect(ab.byteLength).toBe(0); // moved, not copied
    await tick();
    expect(seen.buffers).toHaveLength(1);
    expect(seen.buffers[0]![0]).toBe('x');
    expect((seen.buffers[0]![1] as ArrayBuffer).byteLength).toBe(16);
  });
});

describe('shapes', () => {
  it('checks nested structures and names the path', () => {
    const s = object({ list: arrayOf(object({ id: 'integer', kind: literal('a', 'b') })), pair: tuple('string', 'integer'), opt: optional('boolean') });
    expect(checkShape(s, { list: [{ id: 1, kind: 'a' }], pair: ['x', 2] })).toBeNull();
    expect(checkShape(s, { list: [{ id: 1.5, kind: 'a' }], pair: ['x', 2] })).toBe('body.list[0].id: expected an integer');
    expect(checkShape(s, { list: [{ id: 1, kind: 'c' }], pair: ['x', 2] })).toBe('body.list[0].kind: expected one of a, b');
    expect(checkShape(s, { list: [], pair: ['x'] })).toBe('body.pair: expected a tuple of 2');
    expect(checkShape(s, { list: [], pair: ['x', 1], extra: 1 })).toBe('body.extra: unknown field');
    expect(checkShape(s, { list: [], pair: ['x', 1], opt: 'no' })).toBe('body.opt: expected boolean');
  });
});

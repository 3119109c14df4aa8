/**
 * Output backpressure (connection.ts): when the initiator stops reading, the socket's
 * buffer passes its high-water mark and the connection stops reading commands until the
 * buffer drains, so memory stays bounded. Every write past the mark reports backpressure
 * again; the connection must wait for 'drain' once, not once per write (one listener
 * per write was a MaxListenersExceededWarning in a conformance run, and a closure per
 * PDU on the hot path).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Opcode } from '../../../src/shared/iscsi/pdu.ts';
import { FakeConnection, settle } from '../../helpers/fake-connection.ts';
import { nopOutBhs } from '../../helpers/initiator.ts';
import { framePdu } from '../../helpers/pdu-stream.ts';

const warnings: Error[] = [];
const onWarning = (w: Error): void => void warnings.push(w);

beforeEach(() => {
  warnings.length = 0;
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
});

/** `n` immediate NOP-Out pings in one chunk: n NOP-In replies written in one turn. */
function pings(h: FakeConnection, n: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++)
    parts.push(framePdu(nopOutBhs({ immediate: true, itt: h.allocItt(), cmdSN: h.cmdSN })));
  return Buffer.concat(parts);
}

describe('output backpressure', () => {
  it('waits for one drain however many writes pass the high-water mark, then reads again', async () => {
    const h = await FakeConnection.open({ writableHighWaterMark: 256 });
    const listeners = h.socket.listenerCount('drain');
    const reads = Array.from({ length: 10 }, () => h.command({ read: true, edtl: 512 }).itt);
    await settle();
    const atLun = h.lun.pending();
    expect(atLun).toHaveLength(10); // held by the LU for now

    h.socket.setPeerReading(false);
    h.socket.deliver(pings(h, 40)); // 40 NOP-Ins of 48 bytes: far past 256
    await settle();
    expect(h.socket.writableNeedDrain).toBe(true);
    expect(h.socket.isPaused()).toBe(true);
    expect(h.socket.listenerCount('drain')).toBe(listeners);

    // Completions keep coming while input is paused: more writes past the mark.
    for (const c of atLun) h.lun.complete(c, { dataIn: Buffer.alloc(512, 1) });
    // The initiator keeps sending: nothing more is read until the socket drains.
    for (let i = 0; i < 15; i++) h.send(nopOutBhs({ immediate: true, itt: h.allocItt(), cmdSN: h.cmdSN }));
    await settle();
    expect(h.socket.listenerCount('drain')).toBe(listeners);
    // The peer has taken the first batch off the stream but not read it: the rest waits
    // in the socket's buffer.
    const before = await h.take();
    expect(before).toHaveLength(40);
    expect(before.every((p) => p.opcode === Opcode.NOP_IN)).toBe(true);

    h.socket.setPeerReading(true);
    await settle();
    expect(h.socket.isPaused()).toBe(false);
    const late = await h.take();
    // The Data-Ins queued while blocked, then the answers to the pings read after the drain.
    expect(late.filter((p) => p.opcode === Opcode.DATA_IN).map((p) => p.itt)).toEqual(reads);
    expect(late.slice(10).map((p) => p.opcode)).toEqual(new Array(15).fill(Opcode.NOP_IN));
    expect(h.socket.listenerCount('drain')).toBe(listeners);
    expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    expect(h.leftovers).toEqual({ tasks: 0, slabBytes: 0, connectionTasks: 0, atLun: 0 });
    await h.close();
  });

  it('stops reading again at the next backpressure episode', async () => {
    const h = await FakeConnection.open({ writableHighWaterMark: 256 });
    for (let round = 0; round < 3; round++) {
      h.socket.setPeerReading(false);
      h.socket.deliver(pings(h, 12));
      await settle();
      expect(h.socket.isPaused()).toBe(true);
      h.socket.setPeerReading(true);
      await settle();
      expect(h.socket.isPaused()).toBe(false);
      expect(await h.take()).toHaveLength(12);
    }
    expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    await h.close();
  });

  it('does not read again after the connection closed while blocked', async () => {
    const h = await FakeConnection.open({ writableHighWaterMark: 256 });
    h.socket.setPeerReading(false);
    h.socket.deliver(pings(h, 12));
    await settle();
    expect(h.socket.isPaused()).toBe(true);
    h.conn.close('test');
    h.socket.setPeerReading(true);
    await settle();
    expect(h.closed).toBe(true);
    expect(h.socket.isPaused()).toBe(true);
  });
});

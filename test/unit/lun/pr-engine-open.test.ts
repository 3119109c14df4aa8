/**
 * PrEngine.open in cluster mode: a change from another node that crosses the initial load
 * (made after the state was read, delivered before the answer arrives) is applied on top
 * of the loaded state, and its delivery (which the node acknowledges to the writer) does
 * not complete before that. Without it the LU would open with the older state and the
 * writer would report GOOD while this node still admits what the change forbids.
 */
import { describe, expect, it } from 'vitest';
import { PrEngine } from '../../../src/workers/lun/pr/engine.ts';
import { EMPTY_PR_STATE, type ClusterState, type PrEvent, type PrState } from '../../../src/shared/state/cluster-state.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';

function luStandIn(): LogicalUnit {
  return {
    naa: Buffer.from('6001405abcdef0123456789abcdef012', 'hex'),
    nexuses: new Map(),
    taskSet: { barrier: () => Promise.resolve(), whenNone: (_: unknown, cb: () => void) => cb() },
    invalidateInline: () => {},
  } as unknown as LogicalUnit;
}

describe('PrEngine.open with a shared store', () => {
  it('applies a change delivered while the load is in flight, after the loaded state', async () => {
    let answer!: (s: PrState) => void;
    let listener: ((e: PrEvent) => void | Promise<void>) | undefined;
    const store = {
      loadPr: () => new Promise<PrState>((r) => (answer = r)),
      subscribe: (_lu: string, l: (e: PrEvent) => void | Promise<void>) => {
        listener = l;
        return () => (listener = undefined);
      },
    } as unknown as ClusterState;
    const opening = PrEngine.open(luStandIn(), undefined, store);
    await Promise.resolve();
    expect(listener, 'subscribed before the load is answered').toBeDefined();
    const newer: PrState = { ...EMPTY_PR_STATE, version: 1, generation: 1 };
    let delivered = false;
    const delivery = Promise.resolve(listener!({ lu: 'x', state: newer, effects: [] })).then(() => (delivered = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(delivered, 'the delivery waits for the load').toBe(false);
    answer(EMPTY_PR_STATE); // read before the change
    const engine = await opening;
    await delivery;
    expect(engine.state.version).toBe(1);
  });
});

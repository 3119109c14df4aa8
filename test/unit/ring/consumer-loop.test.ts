/**
 * ConsumerLoop (src/shared/ring/consumer-loop.ts): drains what is published, parks when
 * there is nothing, wakes when rung, ends on stop(); a hot wait (mayBlock) blocks only
 * briefly after work and then parks, so the thread's event loop keeps running.
 */
import { describe, expect, it } from 'vitest';
import { Doorbell } from '../../../src/shared/ring/doorbell.ts';
import { ConsumerLoop, HOT_WAIT_MS } from '../../../src/shared/ring/consumer-loop.ts';

describe('ConsumerLoop', () => {
  it('drains items rung in while parked, and ends on stop()', async () => {
    const bell = new Doorbell();
    let queued = 0;
    let handled = 0;
    const loop = new ConsumerLoop(bell, () => {
      const n = queued;
      queued = 0;
      handled += n;
      return n;
    });
    const done = loop.run();
    await new Promise((r) => setTimeout(r, 10));
    queued = 3;
    bell.ring();
    await new Promise((r) => setTimeout(r, 10));
    expect(handled).toBe(3);
    loop.stop();
    await done;
  });

  it('a hot wait after work gives the event loop back within a few ms', async () => {
    const bell = new Doorbell();
    let first = true;
    const loop = new ConsumerLoop(
      bell,
      () => {
        if (!first) return 0;
        first = false;
        return 1;
      },
      () => true,
    );
    const t0 = performance.now();
    const done = loop.run();
    // A timer runs only once the loop stopped blocking this thread.
    await new Promise((r) => setTimeout(r, 0));
    expect(performance.now() - t0).toBeLessThan(HOT_WAIT_MS * 20 + 50);
    loop.stop();
    await done;
  });
});

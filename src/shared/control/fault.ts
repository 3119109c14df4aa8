/**
 * Test-only fault injection for worker supervision tests (issue 12): a worker asked to
 * `crash` throws from its event loop (an uncaught exception ends the thread, as a bug
 * would); asked to `hang`, it spins for ever without returning to its event loop (its
 * heartbeat stops, as with an endless loop). Refused unless SPINDLE_TEST_FAULTS=1.
 */
import { ControlError, ControlErrorCode } from './errors.ts';

export function injectFault(mode: 'crash' | 'hang'): void {
  if (process.env['SPINDLE_TEST_FAULTS'] !== '1') throw new ControlError(ControlErrorCode.UNSUPPORTED, 'fault injection is off (SPINDLE_TEST_FAULTS=1 enables it)');
  setImmediate(() => {
    if (mode === 'crash') throw new Error('injected crash (SPINDLE_TEST_FAULTS)');
    for (;;) {
      // injected hang: never back to the event loop
    }
  });
}

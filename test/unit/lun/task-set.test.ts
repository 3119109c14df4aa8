/**
 * The task set (SAM-5 8.6 task attributes, SAM-5 5.3.2 queue depth) and task
 * management on it (task-set.ts, task-management.ts): first the TaskSet alone with a
 * recording runner, so that "started" and "finished" are under the test's control; then
 * through submitCommand/executeCommand on real logical units.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ScsiCommand } from '../../../src/shared/scsi/command.ts';
import { ScsiStatus, TaskAttribute } from '../../../src/shared/scsi/command.ts';
import { TmfFunction } from '../../../src/shared/iscsi/pdu.ts';
import { submitCommand } from '../../../src/workers/lun/execute.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import { TaskSet } from '../../../src/workers/lun/task-set.ts';
import { applyTaskManagement } from '../../../src/workers/lun/task-management.ts';
import { TestCommand, cdb10, openLu, tempDir } from './helpers.ts';
import { FileStore } from '../../../src/workers/lun/backing/file-store.ts';

// File LUs here stand for slow media: their commands must overlap, so no page-cache
// I/O in place (file-store.ts).
FileStore.inPlaceIo = false;

const { SIMPLE, ORDERED, HEAD_OF_QUEUE, ACA, UNTAGGED } = TaskAttribute;

/** A command as the LUN worker's LunTask behaves: finish() leaves the task set. */
class Task extends TestCommand {
  aborted = false;
  abortedWithStatus = false;
  started = false;
  readonly set: TaskSet;
  readonly name: string;
  readonly log: string[];
  constructor(set: TaskSet, name: string, attribute: number, nexus = 1, log: string[] = []) {
    super([0, 0, 0, 0, 0, 0], 0);
    this.set = set;
    this.name = name;
    this.log = log;
    this.attribute = attribute;
    this.nexus = nexus;
  }
  override finish(): void {
    super.finish();
    this.log.push(`done ${this.name}`);
    this.set.remove(this);
  }
}

describe('TaskSet (task attributes, SAM-5 8.6)', () => {
  let invalidations = 0;
  const fakeLu = { invalidateInline: () => invalidations++ } as unknown as LogicalUnit;
  let set: TaskSet;
  let log: string[];
  let running: Task[];
  const mk = (name: string, attr: number, nexus = 1): Task => new Task(set, name, attr, nexus, log);
  /** Submit as execute.ts does: run at once when admitted. */
  const submit = (t: Task): void => {
    if (set.admit(t)) start(t);
  };
  const start = (t: Task): void => {
    t.started = true;
    running.push(t);
    log.push(`start ${t.name}`);
  };
  const complete = (t: Task): void => {
    running = running.filter((x) => x !== t);
    t.status = ScsiStatus.GOOD;
    t.finish();
  };

  beforeEach(() => {
    // The runner the set calls for the commands it enables later: recorded here.
    set = new TaskSet(fakeLu, (_lu, cmd) => start(cmd as Task), 4);
    log = [];
    running = [];
  });

  it('SIMPLE and untagged commands start at once and run concurrently', () => {
    const a = mk('a', SIMPLE);
    const b = mk('b', UNTAGGED, 2);
    submit(a);
    submit(b);
    expect([a.started, b.started]).toEqual([true, true]);
    expect(set.size).toBe(2);
    complete(b);
    complete(a);
    expect(set.size).toBe(0);
  });

  it('ORDERED waits for every older command of every nexus and blocks newer ones', () => {
    const s1 = mk('s1', SIMPLE, 1);
    const s2 = mk('s2', SIMPLE, 2);
    const o = mk('o', ORDERED, 3);
    const s3 = mk('s3', SIMPLE, 1);
    for (const t of [s1, s2, o, s3]) submit(t);
    expect([s1.started, s2.started, o.started, s3.started]).toEqual([true, true, false, false]);
    expect(set.dormantCount).toBe(2);
    complete(s1);
    expect(o.started).toBe(false); // s2 (another nexus) is still older and running
    complete(s2);
    expect([o.started, s3.started]).toEqual([true, false]);
    complete(o);
    expect(s3.started).toBe(true);
    complete(s3);
    expect(log).toEqual([
      'start s1',
      'start s2',
      'done s1',
      'done s2',
      'start o',
      'done o',
      'start s3',
      'done s3',
    ]);
  });

  it('an ORDERED or HEAD OF QUEUE command voids direct-read grants while it is in the set (quiet)', () => {
    const before = invalidations;
    expect(set.quiet).toBe(true);
    const s1 = mk('s1', SIMPLE);
    submit(s1);
    expect(invalidations, 'SIMPLE commands leave grants alone').toBe(before);
    const o = mk('o', ORDERED);
    submit(o);
    expect(invalidations).toBe(before + 1);
    expect(set.quiet).toBe(false);
    complete(s1);
    complete(o);
    expect(set.quiet).toBe(true);
    const h = mk('h', HEAD_OF_QUEUE);
    submit(h);
    expect(invalidations).toBe(before + 2);
    complete(h);
    expect(set.quiet).toBe(true);
  });

  it('an ORDERED command on an idle task set starts at once; consecutive ORDERED run one by one', () => {
    const o1 = mk('o1', ORDERED);
    const o2 = mk('o2', ORDERED);
    submit(o1);
    submit(o2);
    expect([o1.started, o2.started]).toEqual([true, false]);
    complete(o1);
    expect(o2.started).toBe(true);
    complete(o2);
    // Back on the fast path afterwards.
    const s = mk('s', SIMPLE);
    submit(s);
    expect(s.started).toBe(true);
    complete(s);
  });

  it('HEAD OF QUEUE starts at once, past a dormant ORDERED; newer SIMPLE commands wait for it', () => {
    const s1 = mk('s1', SIMPLE);
    const o = mk('o', ORDERED);
    const h = mk('h', HEAD_OF_QUEUE, 2);
    const s2 = mk('s2', SIMPLE);
    for (const t of [s1, o, h, s2]) submit(t);
    expect([s1.started, o.started, h.started, s2.started]).toEqual([true, false, true, false]);
    complete(s1);
    expect(o.started).toBe(false); // waits for the HEAD OF QUEUE command too (SAM-5 8.6.3)
    complete(h);
    expect([o.started, s2.started]).toEqual([true, false]);
    complete(o);
    expect(s2.started).toBe(true);
    complete(s2);
  });

  it('a SIMPLE command waits while a HEAD OF QUEUE command runs (SAM-5 8.6.2)', () => {
    const h = mk('h', HEAD_OF_QUEUE);
    const s = mk('s', SIMPLE);
    submit(h);
    submit(s);
    expect(s.started).toBe(false);
    complete(h);
    expect(s.started).toBe(true);
    complete(s);
  });

  it('dormant commands that finish synchronously run in a loop, not by recursion', () => {
    // A runner that completes every command at once (like a RAM-backed READ).
    const big = new TaskSet(
      fakeLu,
      (_lu, cmd) => {
        log.push(`start ${(cmd as Task).name}`);
        cmd.status = 0;
        cmd.finish();
      },
      5000,
    );
    const hold = new Task(big, 'hold', SIMPLE, 1, log);
    expect(big.admit(hold)).toBe(true); // in flight until the test finishes it
    const n = 3000;
    for (let i = 0; i < n; i++)
      expect(big.admit(new Task(big, `o${i}`, ORDERED, 1 + (i % 3), log))).toBe(false);
    hold.finish();
    expect(big.size).toBe(0);
    // Each ORDERED command finished before the next one started.
    const order = log.filter((l) => l.includes(' o'));
    expect(order.length).toBe(2 * n);
    for (let i = 0; i < n; i += 97)
      expect(order.slice(2 * i, 2 * i + 2)).toEqual([`start o${i}`, `done o${i}`]);
  });

  it('queue depth: TASK SET FULL when the nexus has commands in the set, BUSY otherwise (SAM-5 5.3.2)', () => {
    const held = [mk('a', SIMPLE, 1), mk('b', SIMPLE, 1), mk('c', ORDERED, 1), mk('d', SIMPLE, 1)];
    for (const t of held) submit(t);
    expect(set.size).toBe(4);
    const full = mk('e', SIMPLE, 1);
    submit(full);
    expect(full.started).toBe(false);
    expect(full.finishCount).toBe(1);
    expect(full.status).toBe(ScsiStatus.TASK_SET_FULL);
    const busy = mk('f', HEAD_OF_QUEUE, 2);
    submit(busy);
    expect(busy.status).toBe(ScsiStatus.BUSY);
    expect(set.size).toBe(4);
    complete(held[0]!);
    const ok = mk('g', HEAD_OF_QUEUE, 2);
    submit(ok);
    expect(ok.started).toBe(true);
  });

  it('the ACA attribute without an ACA condition: CHECK CONDITION, INVALID MESSAGE ERROR (SAM-5 8.6.5)', () => {
    const t = mk('aca', ACA);
    submit(t);
    expect(t.started).toBe(false);
    expect(t.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(t.senseTriple).toEqual([0x5, 0x49, 0x00]);
    expect(set.size).toBe(0);
  });

  /** Complete `t` with CHECK CONDITION; `naca` sets NACA in its (6-byte) control byte. */
  const fail = (t: Task, naca: boolean): void => {
    running = running.filter((x) => x !== t);
    t.cdb[5] = naca ? 0x04 : 0;
    t.status = ScsiStatus.CHECK_CONDITION;
    t.finish();
  };

  describe('auto contingent allegiance (SAM-5 5.9, QErr = 00b, TST = 000b)', () => {
    it('CHECK CONDITION with NACA = 0 establishes nothing', () => {
      const a = mk('a', SIMPLE);
      submit(a);
      fail(a, false);
      expect(set.acaNexus).toBe(-1);
      const b = mk('b', SIMPLE, 2);
      submit(b);
      expect(b.started).toBe(true);
    });

    it('NACA = 1: new commands of every nexus get ACA ACTIVE; the faulted nexus may run one ACA command', () => {
      const a = mk('a', SIMPLE, 1);
      submit(a);
      fail(a, true);
      expect(set.acaNexus).toBe(1);
      const other = mk('other', SIMPLE, 2);
      submit(other);
      expect([other.started, other.status]).toEqual([false, ScsiStatus.ACA_ACTIVE]);
      const own = mk('own', ORDERED, 1);
      submit(own);
      expect(own.status).toBe(ScsiStatus.ACA_ACTIVE);
      const notFaulted = mk('aca2', ACA, 2);
      submit(notFaulted);
      expect(notFaulted.status).toBe(ScsiStatus.ACA_ACTIVE);
      const recovery = mk('recovery', ACA, 1);
      submit(recovery);
      expect(recovery.started).toBe(true);
      const second = mk('second', ACA, 1);
      submit(second);
      expect(second.status).toBe(ScsiStatus.ACA_ACTIVE); // one ACA command at a time
      complete(recovery); // GOOD: the ACA condition stays until CLEAR ACA
      expect(set.acaNexus).toBe(1);
      const again = mk('again', ACA, 1);
      submit(again);
      expect(again.started).toBe(true);
    });

    it('dormant commands are blocked during ACA and resume, in order, once it is cleared', () => {
      const ord = mk('ord', ORDERED, 2);
      submit(ord);
      const waiting = mk('waiting', SIMPLE, 3);
      submit(waiting); // dormant behind the ORDERED command
      const running1 = mk('r', HEAD_OF_QUEUE, 1);
      submit(running1);
      fail(running1, true);
      expect(set.acaNexus).toBe(1);
      complete(ord);
      expect(waiting.started).toBe(false); // blocked
      set.clearAca();
      expect(waiting.started).toBe(true);
      const fresh = mk('fresh', SIMPLE, 2);
      submit(fresh);
      expect(fresh.started).toBe(true); // the hot path is open again
    });

    it('the ACA command ending in CHECK CONDITION clears it; with NACA = 1 a new one starts', () => {
      const a = mk('a', SIMPLE, 1);
      submit(a);
      fail(a, true);
      const r1 = mk('r1', ACA, 1);
      submit(r1);
      fail(r1, false);
      expect(set.acaNexus).toBe(-1);
      const b = mk('b', SIMPLE, 2);
      submit(b);
      fail(b, true);
      expect(set.acaNexus).toBe(2);
      const r2 = mk('r2', ACA, 2);
      submit(r2);
      fail(r2, true);
      expect(set.acaNexus).toBe(2); // cleared, then established again by r2 itself
    });

    it('an aborted command establishes nothing', () => {
      const a = mk('a', SIMPLE, 1);
      submit(a);
      a.aborted = true;
      fail(a, true);
      expect(set.acaNexus).toBe(-1);
    });
  });

  it('abort: enabled commands are marked, dormant ones complete at once without running', () => {
    const s = mk('s', SIMPLE, 1);
    const o = mk('o', ORDERED, 2);
    const s2 = mk('s2', SIMPLE, 2);
    for (const t of [s, o, s2]) submit(t);
    const marked: string[] = [];
    set.abort(
      () => true,
      (c) => {
        marked.push((c as Task).name);
        (c as Task).aborted = true;
      },
    );
    expect(marked).toEqual(['s', 'o', 's2']);
    expect([o.finishCount, s2.finishCount, o.started, s2.started]).toEqual([1, 1, false, false]);
    expect(s.finishCount).toBe(0); // still running; completes (aborted) on its own
    let drained = false;
    set.whenNone(
      () => true,
      () => (drained = true),
    );
    expect(drained).toBe(false);
    complete(s);
    expect(drained).toBe(true);
    expect(set.size).toBe(0);
    const next = mk('n', SIMPLE);
    submit(next);
    expect(next.started).toBe(true); // the fast path is open again
  });

  it('aborting the command an ORDERED one waits behind lets it run', () => {
    const h = mk('h', HEAD_OF_QUEUE, 1);
    const o1 = mk('o1', ORDERED, 1);
    const o2 = mk('o2', ORDERED, 2);
    for (const t of [h, o1, o2]) submit(t);
    set.abort(
      (c) => c === o1,
      (c) => ((c as Task).aborted = true),
    );
    expect(o1.finishCount).toBe(1);
    expect(o2.started).toBe(false); // the HEAD OF QUEUE command still runs
    complete(h);
    expect(o2.started).toBe(true);
  });
});

describe('task set through submitCommand on a logical unit', () => {
  let dir: { dir: string; cleanup: () => void };
  let lu: LogicalUnit;
  let log: string[];

  /** LunTask-like: finish() leaves the LU's task set. */
  class LuTask extends TestCommand {
    aborted = false;
    abortedWithStatus = false;
    readonly name: string;
    constructor(name: string, cdb: number[], attribute: number, nexus: number, dataLength: number) {
      super(cdb, dataLength);
      this.name = name;
      this.attribute = attribute;
      this.nexus = nexus;
    }
    override finish(): void {
      super.finish();
      log.push(this.name);
      lu.taskSet.remove(this);
    }
  }
  const read = (name: string, attr: number = SIMPLE, nexus = 1): LuTask =>
    new LuTask(name, cdb10(0x28, 0, 8), attr, nexus, 4096);
  const write = (name: string, attr: number = SIMPLE, nexus = 1): LuTask => {
    const t = new LuTask(name, cdb10(0x2a, 0, 8), attr, nexus, 4096);
    t.data.fill(0x5a);
    t.dataOutLength = 4096;
    return t;
  };

  beforeEach(async () => {
    dir = tempDir();
    // A file store: its I/O completes asynchronously, so commands overlap.
    lu = await openLu('file', dir.dir, { queueDepth: 3 });
    log = [];
  });
  afterEach(async () => {
    await lu.close();
    dir.cleanup();
  });

  it('an ORDERED WRITE after a SIMPLE READ runs after it; a later SIMPLE READ sees the write', async () => {
    const r1 = read('r1');
    const w = write('w', ORDERED, 2);
    const r2 = read('r2', SIMPLE, 1);
    for (const t of [r1, w, r2]) submitCommand(lu, t);
    expect(lu.taskSet.dormantCount).toBe(2);
    await Promise.all([r1.finished, w.finished, r2.finished]);
    expect(log).toEqual(['r1', 'w', 'r2']);
    expect([r1.status, w.status, r2.status]).toEqual([0, 0, 0]);
    expect(r1.dataIn.every((b) => b === 0)).toBe(true); // the READ did not see the later WRITE
    expect(r2.dataIn.every((b) => b === 0x5a)).toBe(true);
    expect(lu.taskSet.size).toBe(0);
  });

  it('beyond queueDepth: TASK SET FULL for a nexus with commands in the set, BUSY for another', async () => {
    const held = [read('a'), read('b'), read('c')];
    for (const t of held) submitCommand(lu, t);
    const tsf = read('tsf', SIMPLE, 1);
    const busy = read('busy', SIMPLE, 2);
    submitCommand(lu, tsf);
    submitCommand(lu, busy);
    expect(tsf.status).toBe(ScsiStatus.TASK_SET_FULL);
    expect(busy.status).toBe(ScsiStatus.BUSY);
    expect([tsf.dataInLength, busy.dataInLength]).toEqual([0, 0]);
    await Promise.all(held.map((t) => t.finished));
    const again = read('again', SIMPLE, 2);
    submitCommand(lu, again);
    await again.finished;
    expect(again.status).toBe(ScsiStatus.GOOD);
  });

  it('LOGICAL UNIT RESET completes dormant commands unrun; with TAS = 1 other nexuses get TASK ABORTED marks', async () => {
    lu.taskAbortedStatus = true;
    const r = read('r', SIMPLE, 1);
    const w = write('w', ORDERED, 2);
    submitCommand(lu, r);
    submitCommand(lu, w);
    let acknowledged = false;
    applyTaskManagement(lu, TmfFunction.LOGICAL_UNIT_RESET, 1, () => (acknowledged = true));
    expect(w.finishCount).toBe(1); // dormant: done at once, never executed
    expect([w.aborted, w.abortedWithStatus]).toEqual([true, true]);
    expect([r.aborted, r.abortedWithStatus]).toEqual([true, false]); // the issuer's own
    await r.finished;
    expect(acknowledged).toBe(true);
    // The reset is reported (SAM-5 6.3.3), and the WRITE never reached the medium.
    const ua = read('ua', SIMPLE, 1);
    submitCommand(lu, ua);
    await ua.finished;
    expect(ua.senseTriple).toEqual([0x6, 0x29, 0x03]);
    const check = read('check', SIMPLE, 1);
    submitCommand(lu, check);
    await check.finished;
    expect(check.status).toBe(ScsiStatus.GOOD);
    expect(check.dataIn.every((b) => b === 0)).toBe(true);
  });

  it('the hot path: a SIMPLE command on an idle LU is admitted with no dormant bookkeeping', () => {
    const c = { attribute: SIMPLE, nexus: 1 } as ScsiCommand;
    expect(lu.taskSet.admit(c)).toBe(true);
    expect(lu.taskSet.dormantCount).toBe(0);
    lu.taskSet.remove(c);
    expect(lu.taskSet.size).toBe(0);
  });
});

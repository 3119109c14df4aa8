/**
 * The embedded ClusterState: one node, state in memory, persisted under
 * `<dir>/<lu>.json` (the LU's NAA designator as hex; the caller passes
 * `<stateDir>/pr`) so that APTPL registrations and reservations survive a restart.
 *
 * SPC-4 5.14.5: with APTPL = 1 (as last set by REGISTER, REGISTER AND IGNORE EXISTING
 * KEY or REGISTER AND MOVE) registrations and the persistent reservation are preserved
 * across power loss; with APTPL = 0 they are lost. A target restart is a power off:
 * only APTPL state is written (temp file, fsync, rename, fsync of the directory, so a
 * crash leaves the old or the new file, never a torn one), and a state with APTPL = 0
 * removes the file. PRgeneration restarts at 0 on every power on, APTPL or not (SPC-4
 * 6.15.2: "Regardless of the APTPL bit value the PRgeneration value shall be set to zero
 * by a power on"); it is stored only for diagnostics. SPC-2 reservations never persist
 * (they end with a reset, SAM-5 6.3).
 *
 * Transitions of one LU run one after the other (a promise chain per LU), each written
 * to disk before its result is returned, so a PR OUT that reported GOOD is durable.
 * One process owns a directory (a LUN worker owns its LUs); there are no other writers,
 * so `subscribe` listeners never fire here.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { ClusterState, PrEvent, PrRegistration, PrRequest, PrResult, PrState } from './cluster-state.ts';
import { EMPTY_PR_STATE, isPrType } from './cluster-state.ts';
import { applyPrRequest } from './pr-transition.ts';

/** On-disk format version of `<lu>.json`. */
const FORMAT = 1;

interface PersistedPr {
  format: number;
  generation: number;
  registrations: PrRegistration[];
  reservation: PrState['reservation'];
}

export class EmbeddedClusterState implements ClusterState {
  /** Directory of the `<lu>.json` files; null: memory only (tests, no stateDir). */
  private readonly dir: string | null;
  private readonly states = new Map<string, PrState>();
  /** Tail of each LU's transition queue. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** LUs that have a file on disk now. */
  private readonly onDisk = new Set<string>();

  constructor(dir: string | null) {
    this.dir = dir;
  }

  async loadPr(lu: string): Promise<PrState> {
    const known = this.states.get(lu);
    if (known !== undefined) return known;
    const s = await this.readPersisted(lu);
    this.states.set(lu, s);
    return s;
  }

  transition(lu: string, request: PrRequest): Promise<PrResult> {
    const run = async (): Promise<PrResult> => {
      const before = await this.loadPr(lu);
      const result = applyPrRequest(before, request);
      if (result.state !== before) {
        await this.persist(lu, result.state);
        this.states.set(lu, result.state);
      }
      return result;
    };
    const tail = this.queues.get(lu) ?? Promise.resolve();
    const p = tail.then(run, run);
    this.queues.set(lu, p.catch(() => undefined));
    return p;
  }

  subscribe(_lu: string, _listener: (event: PrEvent) => void | Promise<void>): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    await Promise.all(this.queues.values());
  }

  private file(lu: string): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(lu)) throw new RangeError(`bad logical unit key ${JSON.stringify(lu)}`);
    return path.join(this.dir!, `${lu}.json`);
  }

  private async readPersisted(lu: string): Promise<PrState> {
    if (this.dir === null) return EMPTY_PR_STATE;
    let text: string;
    try {
      text = await readFile(this.file(lu), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_PR_STATE;
      throw err;
    }
    const p = JSON.parse(text) as PersistedPr;
    if (p.format !== FORMAT || !Array.isArray(p.registrations))
      throw new Error(`${this.file(lu)}: unsupported persistent reservation state`);
    if (p.reservation !== null && !isPrType(p.reservation.type))
      throw new Error(`${this.file(lu)}: bad reservation type ${p.reservation.type}`);
    this.onDisk.add(lu);
    return {
      version: 1,
      generation: 0, // a restart is a power on (SPC-4 6.15.2)
      aptpl: true,
      registrations: p.registrations,
      reservation: p.reservation,
      spc2: null,
    };
  }

  private async persist(lu: string, s: PrState): Promise<void> {
    if (this.dir === null) return;
    const keep = s.aptpl && s.registrations.length > 0;
    if (!keep) {
      if (!this.onDisk.has(lu)) return;
      await unlink(this.file(lu)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await this.syncDir();
      this.onDisk.delete(lu);
      return;
    }
    const body: PersistedPr = {
      format: FORMAT,
      generation: s.generation,
      registrations: [...s.registrations],
      reservation: s.reservation,
    };
    await mkdir(this.dir, { recursive: true });
    const target = this.file(lu);
    const tmp = `${target}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(body, null, 1));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    await this.syncDir();
    this.onDisk.add(lu);
  }

  /** fsync the directory so the rename / unlink itself is durable. */
  private async syncDir(): Promise<void> {
    const d = await open(this.dir!, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}

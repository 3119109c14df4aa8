/**
 * The LUN worker's ClusterState in a cluster: the state lives in Redis, and the supervisor
 * runs the compare-and-set (supervisor/cluster/pr-store.ts). This is the LU's end of it:
 * loads and transitions are requests over the control channel; changes made on other
 * nodes arrive as `prApply` requests (deliver), answered once the LU has adopted them.
 */
import type { ClusterState, PrEffect, PrEvent, PrRequest, PrResult, PrState } from '../../../shared/state/cluster-state.ts';
import { EMPTY_PR_STATE } from '../../../shared/state/cluster-state.ts';
import type { ModePageImage } from '../../../shared/state/mode-image.ts';

/** How the worker reaches the supervisor's cluster state. */
export interface ClusterStateLink {
  load(lu: string): Promise<PrState>;
  transition(lu: string, request: PrRequest): Promise<PrResult>;
  /** Task management that reaches every node's nexuses of these LUs, done on every other node. */
  reset(lus: readonly string[], fn: number): Promise<void>;
  /** The LU's cluster-wide lock; resolves with its token. */
  lock(lu: string): Promise<string>;
  unlock(lu: string, token: string): Promise<void>;
  /** The pending unit attentions kept for LU `lu`, and keeping new ones. */
  loadUa(lu: string): Promise<unknown[]>;
  saveUa(lu: string, entries: readonly unknown[]): void;
  /** A reload grew LU `lu` here. */
  capacityChanged(lu: string, bytes: number): void;
  /** MODE SELECT changed these pages here. */
  modesChanged(lu: string, pages: readonly ModePageImage[]): void;
  /** Explicit ALUA states for every node. */
  setAlua(states: readonly { group: number; state: number }[]): Promise<void>;
}

export class RemoteClusterState implements ClusterState {
  readonly #link: ClusterStateLink;
  readonly #listeners = new Map<string, (event: PrEvent) => void | Promise<void>>();

  constructor(link: ClusterStateLink) {
    this.#link = link;
  }

  loadPr(lu: string): Promise<PrState> {
    return this.#link.load(lu);
  }

  transition(lu: string, request: PrRequest): Promise<PrResult> {
    return this.#link.transition(lu, request);
  }

  subscribe(lu: string, listener: (event: PrEvent) => void | Promise<void>): () => void {
    this.#listeners.set(lu, listener);
    return () => {
      if (this.#listeners.get(lu) === listener) this.#listeners.delete(lu);
    };
  }

  /** A change from elsewhere: resolves once the LU has adopted and fenced it. */
  async deliver(lu: string, state: PrState, effects: readonly PrEffect[], reload = false): Promise<void> {
    await this.#listeners.get(lu)?.({ lu, state, effects, reload });
  }

  /** Have every other node apply task management `fn` to `lus` (resolves when they have). */
  reset(lus: readonly string[], fn: number): Promise<void> {
    return this.#link.reset(lus, fn);
  }

  /** Take the LU's cluster-wide lock (LuEnvironment.atomicLock). */
  async atomicLock(lu: string): Promise<() => Promise<void>> {
    const token = await this.#link.lock(lu);
    return () => this.#link.unlock(lu, token);
  }

  setAlua(states: readonly { group: number; state: number }[]): Promise<void> {
    return this.#link.setAlua(states);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}

export { EMPTY_PR_STATE };

/**
 * The LUN worker's NexusDirectory: resolves nexus handles through the session workers'
 * nexus tables (read on first use, then cached) and forgets a handle when its
 * NEXUS_LOSS descriptor arrives.
 */
import { NexusTable, handleWorker } from '../../shared/ring/nexus-table.ts';
import { initiatorPortName, nexusKey, type NexusDirectory, type NexusInfo } from './nexus.ts';

export class WorkerNexusDirectory implements NexusDirectory {
  private readonly tables: NexusTable[];
  private readonly cache = new Map<number, NexusInfo>();

  constructor(tables: SharedArrayBuffer[]) {
    this.tables = tables.map((t) => new NexusTable(t));
  }

  get(id: number): NexusInfo | undefined {
    let info = this.cache.get(id);
    if (info !== undefined) return info;
    const rec = this.tables[handleWorker(id)]?.read(id);
    if (rec === undefined) return undefined;
    const isid = Buffer.from(rec.isid).toString('hex');
    const initiatorPort = initiatorPortName(rec.initiatorName, isid);
    info = {
      id,
      initiatorName: rec.initiatorName,
      isid,
      initiatorPort,
      targetName: rec.targetName,
      relativeTargetPortId: rec.relativeTargetPortId,
      targetPortGroup: rec.targetPortGroup,
      key: nexusKey(initiatorPort, rec.relativeTargetPortId),
    };
    this.cache.set(id, info);
    return info;
  }

  forget(id: number): void {
    this.cache.delete(id);
  }

  /** Handles of session worker `worker` this directory has resolved (worker recovery). */
  knownOf(worker: number): number[] {
    return [...this.cache.keys()].filter((id) => handleWorker(id) === worker);
  }

  /** Session worker `worker` was replaced: its handles are gone, its table is a fresh one. */
  replaceTable(worker: number, sab: SharedArrayBuffer): void {
    for (const id of this.knownOf(worker)) this.cache.delete(id);
    this.tables[worker] = new NexusTable(sab);
  }
}

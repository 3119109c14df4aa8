/**
 * Backing store factory: the one place that maps a BackingConfig to an implementation.
 */
import type { BackingConfig } from '../../../shared/config-types.ts';
import type { BackingStore } from './store.ts';
import { FileStore } from './file-store.ts';
import { RamStore } from './ram-store.ts';

/** What a store may be given beyond its configuration. */
export interface StoreOptions {
  /** RAM: the contents kept from an earlier LUN worker (see RamStore). */
  readonly ramMemory?: SharedArrayBuffer;
  /** RAM: the store's shared memory, to keep (at open and after every grow). */
  readonly onRamMemory?: (memory: SharedArrayBuffer) => void;
}

export async function openBackingStore(cfg: BackingConfig, o: StoreOptions = {}): Promise<BackingStore> {
  switch (cfg.type) {
    case 'ram': {
      const store = new RamStore(cfg.size, o.ramMemory !== undefined && o.ramMemory.byteLength === cfg.size ? o.ramMemory : undefined);
      if (o.onRamMemory !== undefined) {
        store.onMemory = o.onRamMemory;
        o.onRamMemory(store.memory);
      }
      return store;
    }
    case 'file':
      return FileStore.open(cfg.path, cfg.size);
  }
}

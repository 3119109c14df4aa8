/**
 * Backing store factory: the one place that maps a BackingConfig to an implementation.
 */
import type { BackingConfig } from '../../../shared/config-types.ts';
import type { BackingStore } from './store.ts';
import { FileStore } from './file-store.ts';
import { RamStore } from './ram-store.ts';

export async function openBackingStore(cfg: BackingConfig): Promise<BackingStore> {
  switch (cfg.type) {
    case 'ram':
      return new RamStore(cfg.size);
    case 'file':
      return FileStore.open(cfg.path, cfg.size);
  }
}

/**
 * Backing store factory: the one place that maps a device's configuration to a store.
 */
import type { DeviceConfig } from '../../../shared/config-types.ts';
import type { BackingStore } from './store.ts';
import { FileStore } from './file-store.ts';
import { NullStore } from './null-store.ts';
import { RamStore } from './ram-store.ts';

/** What a store may be given beyond its configuration. */
export interface StoreOptions {
  /** RAM: the contents kept from an earlier LUN worker (see RamStore). */
  readonly ramMemory?: SharedArrayBuffer;
  /** RAM: the store's shared memory, to keep (at open and after every grow). */
  readonly onRamMemory?: (memory: SharedArrayBuffer) => void;
}

/**
 * Whether the device does O_DIRECT I/O: as configured, else by default for block devices
 * (the configuration sets it for every file device in a cluster, config/schema.ts).
 */
export function usesDirectIo(dev: DeviceConfig): boolean {
  return dev.direct ?? dev.backing.type === 'block';
}

/**
 * Open the store of `dev`. A `cdrom` device without an image gets an empty (0-byte)
 * null store: the drive has no disc, and media commands are refused before they reach it
 * (mmc/medium.ts).
 */
export async function openBackingStore(dev: DeviceConfig, o: StoreOptions = {}): Promise<BackingStore> {
  const cfg = dev.backing;
  const direct = usesDirectIo(dev);
  switch (cfg.type) {
    case 'ram': {
      const store = new RamStore(cfg.size, o.ramMemory !== undefined && o.ramMemory.byteLength === cfg.size ? o.ramMemory : undefined);
      if (o.onRamMemory !== undefined) {
        store.onMemory = o.onRamMemory;
        o.onRamMemory(store.memory);
      }
      return store;
    }
    case 'null':
      return new NullStore(cfg.size);
    case 'file':
      return FileStore.openFile(cfg.path, cfg.size, { direct, blockSize: dev.blockSize });
    case 'block':
      return FileStore.openBlock(cfg.path, {
        direct,
        blockSize: dev.blockSize,
        readOnly: dev.readOnly,
        ...(cfg.size === undefined ? {} : { size: cfg.size }),
        ...(cfg.prefix === undefined ? {} : { prefix: cfg.prefix }),
      });
    case 'cdrom':
      return cfg.path === undefined ? new NullStore(0) : openImage(cfg.path, dev);
  }
}

/** An image file for a CD-ROM drive: read-only, sized by the file. */
export function openImage(path: string, dev: DeviceConfig): Promise<FileStore> {
  return FileStore.openImage(path, { direct: usesDirectIo(dev), blockSize: dev.blockSize });
}

/**
 * What a benchmark LU is backed by, the same way on both targets:
 *   ram   spindle `ram`; tgtd's rdwr store on a file in /dev/shm (tmpfs, so RAM);
 *   null  spindle `null`; tgtd `--bstype null`: no medium at all, the protocol path alone;
 *   file  a regular file on a real disk file system (not tmpfs), spindle `file` with the
 *         page cache (direct: false) and writeCache: writeback, tgtd's rdwr store with no
 *         bsoflags: both pwrite into the page cache with no sync per write, and flush on
 *         SYNCHRONIZE CACHE or FUA (tgt syncs a write only when FUA is set or WCE is off
 *         in its caching mode page, and WCE is on by default).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onCleanup } from './processes.ts';

export type Backing = 'ram' | 'null' | 'file';
export const BACKINGS: readonly Backing[] = ['ram', 'null', 'file'];

/** tgtd's null store has a fixed size of 1 TiB (bs_null.c); spindle's null LU matches it. */
export const NULL_LU_BYTES = 2 ** 40;
export const DEFAULT_LU_BYTES = 2 ** 30;

export function luBytes(backing: Backing, requested: number): number {
  return backing === 'null' ? NULL_LU_BYTES : requested;
}

/** Whether an LU with this backing holds data, so it is written once in full before reads. */
export function needsPrefill(backing: Backing): boolean {
  return backing !== 'null';
}

/** The file system type of `dir` (`stat -f`), e.g. "tmpfs", "ext2/ext3", "xfs". */
export function fsType(dir: string): string {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

export function shmDir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}

/**
 * A directory on a real disk for `file` LUs: os.tmpdir() unless that is tmpfs (then the
 * repository's own directory, which is on disk wherever the checkout is).
 */
export function diskDir(repo: string): string {
  const tmp = os.tmpdir();
  return fsType(tmp) === 'tmpfs' ? repo : tmp;
}

/** Creates (sparse, `bytes` long) a backing file that is removed at cleanup. */
export async function createBackingFile(dir: string, name: string, bytes: number): Promise<string> {
  const file = path.join(dir, `spindle-bench-${process.pid}-${name}.img`);
  const fh = await open(file, 'w');
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
  onCleanup(() => rm(file, { force: true }));
  return file;
}

/**
 * The backing files one target needs for `count` LUs (created sparse, removed at cleanup):
 * tgtd's rdwr store needs a file for ram (on /dev/shm) and for file (on disk); spindle
 * needs one only for file; null needs none.
 */
export async function backingFilesFor(
  target: 'spindle' | 'tgtd',
  backing: Backing,
  name: string,
  count: number,
  bytes: number,
  repo: string,
): Promise<string[]> {
  if (backing === 'null' || (backing === 'ram' && target === 'spindle')) return [];
  const dir = backing === 'ram' ? shmDir() : diskDir(repo);
  const files: string[] = [];
  for (let i = 0; i < count; i++) files.push(await createBackingFile(dir, `${name}-${i}`, bytes));
  return files;
}

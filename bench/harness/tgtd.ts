/**
 * tgtd (the STGT userspace target, Debian package tgt) as the baseline target, on a
 * private control port so a system tgtd, if any, is left alone.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { luBytes, type Backing } from './backing.ts';
import { exited, freePort, mustRun, onCleanup, startDaemon, tail } from './processes.ts';
import { luUrl, threadCount, waitForLu, type RunningTarget } from './target.ts';

export interface StartTgtdOptions {
  readonly work: string;
  readonly name?: string;
  readonly iqn: string;
  readonly backing: Backing;
  readonly bytes: number;
  readonly count: number;
  /** ram and file: one backing file per LU (created by the caller). */
  readonly files?: readonly string[];
}

export async function startTgtd(o: StartTgtdOptions): Promise<RunningTarget> {
  const port = await freePort();
  // tgtd's management socket is /var/run/tgtd/socket.<control port>: pick an unused one.
  let control = 0;
  for (let i = 0; i < 100 && control === 0; i++) {
    const c = 10000 + Math.floor(Math.random() * 22000); // tgtd accepts at most 32767
    if (!existsSync(`/var/run/tgtd/socket.${c}`)) control = c;
  }
  if (control === 0) throw new Error('no free tgtd control port');
  const commands: string[] = [];
  const adm = (...args: string[]): Promise<string> => {
    commands.push(['tgtadm', ...args].join(' '));
    return mustRun('tgtadm', ['-C', String(control), ...args]);
  };

  const logFile = path.join(o.work, `${o.name ?? 'tgtd'}.log`);
  const child = await startDaemon(
    'tgtd',
    ['-f', '--control-port', String(control), '--iscsi', `portal=127.0.0.1:${port}`],
    logFile,
  );
  // Runs before stopChild (cleanups unwind in reverse). tgtd ignores SIGTERM, so shut it
  // down through its management interface; stopChild's SIGKILL is only the fallback.
  const admQuiet = (...args: string[]): Promise<unknown> =>
    new Promise((resolve) => {
      // Not through run(): this must work after an abort too.
      const c = spawn('tgtadm', ['-C', String(control), ...args], { stdio: 'ignore' });
      const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
      c.on('error', resolve);
      c.on('close', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
  onCleanup(async () => {
    if (!exited(child)) {
      await admQuiet('--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', '1', '--force');
      await admQuiet('--op', 'delete', '--mode', 'system');
      const deadline = Date.now() + 3000;
      while (!exited(child) && Date.now() < deadline) await sleep(100);
    }
    for (const f of [`/var/run/tgtd/socket.${control}`, `/var/run/tgtd/socket.${control}.lock`]) {
      await rm(f, { force: true });
    }
  });

  const deadline = Date.now() + 10_000;
  while (!existsSync(`/var/run/tgtd/socket.${control}`)) {
    if (exited(child) || Date.now() > deadline)
      throw new Error(`tgtd did not start:\n${await tail(logFile)}`);
    await sleep(50);
  }
  await adm('--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', '1', '-T', o.iqn);
  // LUN 0 of a tgt target is its controller LU; the disks are LUN 1, 2, ...
  const luns = Array.from({ length: o.count }, (_, i) => i + 1);
  for (const [i, lun] of luns.entries()) {
    // The null store never opens its path, but each LU gets its own name all the same.
    const store = o.backing === 'null' ? `null-store-${lun}` : o.files?.[i];
    if (store === undefined) throw new Error(`tgtd ${o.backing} LU ${lun} needs a backing file`);
    // prettier-ignore
    await adm(
      '--lld', 'iscsi', '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', String(lun),
      '--backing-store', store, '--bstype', o.backing === 'null' ? 'null' : 'rdwr',
    );
  }
  await adm('--lld', 'iscsi', '--op', 'bind', '--mode', 'target', '--tid', '1', '-I', 'ALL');
  const lus = luns.map((lun) => ({ lun, url: luUrl('127.0.0.1', port, o.iqn, lun) }));
  for (const lu of lus) await waitForLu(lu.url, child, logFile, luBytes(o.backing, o.bytes));
  return {
    name: o.name ?? 'tgtd',
    kind: 'tgtd',
    pid: child.pid!,
    host: '127.0.0.1',
    port,
    iqn: o.iqn,
    lus,
    syncFiles: o.backing === 'file' ? (o.files ?? []) : [],
    setup: {
      commands,
      bstype: o.backing === 'null' ? 'null' : 'rdwr',
      bsoflags: 'none: buffered pread/pwrite, no O_SYNC, no O_DIRECT',
      writeCache: 'WCE on (tgt default caching mode page): a write is synced only with FUA',
      threads: threadCount(child.pid!),
    },
  };
}

/** `tgtd --version`, e.g. "1.0.85". */
export async function tgtdVersion(): Promise<string> {
  try {
    return (await mustRun('tgtd', ['--version'])).trim();
  } catch {
    return 'unknown';
  }
}

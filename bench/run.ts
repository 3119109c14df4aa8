/**
 * Benchmark: spindle side by side with tgtd (the STGT userspace target), on a free loopback
 * port, driven by QEMU's iSCSI initiator through `qemu-img bench`, with two backings:
 *   ram   a 1 GiB LUN in memory (spindle `ram`, tgtd's rdwr store on a /dev/shm file);
 *   null  no medium at all (spindle `null`, tgtd `--bstype null`; both 1 TiB, tgtd's fixed
 *         size): reads return zeros and writes are dropped, so what is measured is the
 *         protocol path alone, the ceiling every backing store stays under.
 *
 *   npm run bench                      # both targets, both backings, ~6 s per run
 *   npm run bench -- --quick           # ~1.5 s per workload
 *   npm run bench -- --only tgtd       # one target (spindle | tgtd)
 *   npm run bench -- --backing null    # one backing (ram | null)
 *
 * Workloads. `qemu-img bench` only walks the image from an offset by a fixed step, wrapping
 * at the end of the image; it has no random mode. Random I/O is emulated with a step of a
 * prime number of blocks (7919 x 4 KiB): 7919 is coprime with the 262144 blocks of the
 * image, so the walk visits every block once per cycle in an order with no locality (every
 * request lands ~31 MiB from the previous one), which defeats sequential detection and
 * merging the way random I/O does, while staying reproducible.
 *
 * Counts. Each workload first runs a short probe (also a warm-up); the measured run then
 * gets the request count that takes about the target duration at the probe's rate, so a
 * slow target does not make the run take forever and a fast one still runs long enough.
 * IOPS = requests / elapsed seconds as reported by qemu-img; MB/s is decimal (10^6 bytes).
 *
 * Both targets are set up the same way for each backing: spindle with a `ram` device, tgtd
 * with the rdwr backing store on a file in /dev/shm (tmpfs, so RAM); spindle with a `null`
 * device, tgtd with its null backing store. Writes use a non-zero pattern so no
 * target can shortcut zero writes. Cache mode `none`: no host page cache on the initiator
 * side (the iscsi driver has none anyway) and no FUA on writes, identically for both.
 *
 * Everything started here is torn down at the end, on failure and on Ctrl-C.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

const REPO = path.resolve(import.meta.dirname, '..');
const LUN_BYTES = 2 ** 30;
/** tgtd's null store has a fixed size of 1 TiB (bs_null.c); spindle's null LU matches it. */
const NULL_LUN_BYTES = 2 ** 40;
const IQN = 'iqn.2026-11.io.spindle:bench';
const RANDOM_STEP_BLOCKS = 7919; // prime, so coprime with the power-of-two block count

type TargetName = 'spindle' | 'tgtd';
const TARGETS: readonly TargetName[] = ['spindle', 'tgtd'];
type Backing = 'ram' | 'null';
const BACKINGS: readonly Backing[] = ['ram', 'null'];
const lunBytes = (b: Backing): number => (b === 'ram' ? LUN_BYTES : NULL_LUN_BYTES);

interface Workload {
  readonly name: string;
  readonly write: boolean;
  readonly size: number;
  readonly depth: number;
  /** Bytes between consecutive request offsets. */
  readonly step: number;
}

const KiB = 1024;
const WORKLOADS: readonly Workload[] = [
  { name: '4k random read QD1', write: false, size: 4 * KiB, depth: 1, step: RANDOM_STEP_BLOCKS * 4 * KiB },
  { name: '4k random read QD32', write: false, size: 4 * KiB, depth: 32, step: RANDOM_STEP_BLOCKS * 4 * KiB },
  { name: '4k random write QD1', write: true, size: 4 * KiB, depth: 1, step: RANDOM_STEP_BLOCKS * 4 * KiB },
  { name: '4k random write QD32', write: true, size: 4 * KiB, depth: 32, step: RANDOM_STEP_BLOCKS * 4 * KiB },
  { name: '128k seq read QD8', write: false, size: 128 * KiB, depth: 8, step: 128 * KiB },
  { name: '128k seq write QD8', write: true, size: 128 * KiB, depth: 8, step: 128 * KiB },
];

interface Result {
  readonly iops: number;
  readonly mbps: number;
  readonly count: number;
  readonly seconds: number;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: a stack of undo actions run once, on normal exit, error or signal.

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;

function runCleanups(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const undo = cleanups.pop()!;
      try {
        await undo();
      } catch (err) {
        console.error(`bench: cleanup step failed: ${String(err)}`);
      }
    }
  })();
  return cleaning;
}

/** Short-lived commands in flight (qemu-img, tgtadm, ...), killed first on abort. */
const active = new Set<ChildProcess>();
let aborted = false;

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\nbench: ${sig}, tearing down`);
    aborted = true; // no new commands start from here on
    for (const child of active) child.kill('SIGKILL');
    void runCleanups().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Processes

interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (killed after timeoutMs). Never rejects for a non-zero exit. */
function run(cmd: string, args: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
  if (aborted) return Promise.reject(new Error('aborted'));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    active.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      active.delete(child);
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      active.delete(child);
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function mustRun(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

/** Spawns a long-running daemon, logging to a file; cleanup stops it (TERM, then KILL). */
async function startDaemon(cmd: string, args: readonly string[], logFile: string): Promise<ChildProcess> {
  const log = await open(logFile, 'w');
  const child = spawn(cmd, args, { stdio: ['ignore', log.fd, log.fd], cwd: REPO });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  try {
    await spawned;
  } finally {
    await log.close(); // the child has its own copy of the descriptor
  }
  cleanups.push(() => stopChild(child));
  return child;
}

async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Waits until the LUN answers READ CAPACITY(16) through a real login, which proves the whole
 * path works (not merely that a port is open), and checks its size.
 */
async function waitForLun(
  url: string,
  child: ChildProcess,
  logFile: string,
  bytes: number,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `target exited (${child.exitCode ?? child.signalCode}) before serving:\n${await tail(logFile)}`,
      );
    }
    const r = await run('iscsi-readcapacity16', [url], 10_000);
    if (r.code === 0) {
      const m = /Total size:\s*(\d+)/.exec(r.stdout);
      if (m !== null && Number(m[1]) !== bytes) {
        throw new Error(`LUN at ${url} has ${m[1]} bytes, expected ${bytes}`);
      }
      return;
    }
    last = (r.stderr || r.stdout).trim();
    await sleep(250);
  }
  throw new Error(`LUN at ${url} not ready after ${timeoutMs} ms: ${last}\n${await tail(logFile)}`);
}

// ---------------------------------------------------------------------------------------------
// Targets: each returns the iscsi:// URL of its LUN with the given backing.

async function startSpindle(work: string, backing: Backing): Promise<string> {
  const port = await freePort();
  const config = path.join(work, 'spindle.yaml');
  await writeFile(
    config,
    [
      '# generated by bench/run.ts',
      'clusterId: bench',
      `stateDir: ${JSON.stringify(path.join(work, 'spindle-state'))}`,
      'logging: { level: warn }',
      'devices:',
      '  - name: lun0',
      backing === 'ram' ? `    ram: { size: ${LUN_BYTES} }` : `    null: { size: ${NULL_LUN_BYTES} }`,
      'targets:',
      `  - iqn: ${IQN}`,
      `    portals: ["127.0.0.1:${port}"]`,
      '    luns: { 0: lun0 }',
      '',
    ].join('\n'),
  );
  const logFile = path.join(work, 'spindle.log');
  // process.execPath: the Node running this script, i.e. the pinned Node 26 under npm.
  const child = await startDaemon(
    process.execPath,
    ['src/supervisor/main.ts', 'serve', '--config', config, '--json'],
    logFile,
  );
  const url = `iscsi://127.0.0.1:${port}/${IQN}/0`;
  await waitForLun(url, child, logFile, lunBytes(backing));
  return url;
}

async function startTgtd(work: string, backing: Backing): Promise<string> {
  const port = await freePort();
  // tgtd's management socket is /var/run/tgtd/socket.<control port>: pick an unused one so
  // a system tgtd (if any) is left alone.
  let control = 0;
  for (let i = 0; i < 100 && control === 0; i++) {
    const c = 10000 + Math.floor(Math.random() * 22000); // tgtd accepts at most 32767
    if (!existsSync(`/var/run/tgtd/socket.${c}`)) control = c;
  }
  if (control === 0) throw new Error('no free tgtd control port');
  const adm = (...args: string[]): Promise<string> => mustRun('tgtadm', ['-C', String(control), ...args]);

  // RAM: a backing file on tmpfs, so the rdwr store does its pread/pwrite against RAM.
  // Null: tgtd's null store takes a name it never opens.
  let store = 'null-store';
  if (backing === 'ram') {
    const shmDir = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
    const file = path.join(shmDir, `spindle-bench-tgtd-${process.pid}.img`);
    const fh = await open(file, 'w');
    await fh.truncate(LUN_BYTES);
    await fh.close();
    cleanups.push(() => rm(file, { force: true }));
    store = file;
  }

  const logFile = path.join(work, 'tgtd.log');
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
  cleanups.push(async () => {
    if (child.exitCode === null) {
      await admQuiet('--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', '1', '--force');
      await admQuiet('--op', 'delete', '--mode', 'system');
      const deadline = Date.now() + 3000;
      while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(100);
    }
    for (const f of [`/var/run/tgtd/socket.${control}`, `/var/run/tgtd/socket.${control}.lock`]) {
      await rm(f, { force: true });
    }
  });

  // The control socket appears shortly after start.
  const deadline = Date.now() + 10_000;
  while (!existsSync(`/var/run/tgtd/socket.${control}`)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`tgtd did not start:\n${await tail(logFile)}`);
    }
    await sleep(50);
  }
  await adm('--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', '1', '-T', IQN);
  // LUN 0 of a tgt target is its controller LU; the disk is LUN 1.
  // prettier-ignore
  await adm(
    '--lld', 'iscsi', '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1',
    '--backing-store', store, '--bstype', backing === 'ram' ? 'rdwr' : 'null',
  );
  await adm('--lld', 'iscsi', '--op', 'bind', '--mode', 'target', '--tid', '1', '-I', 'ALL');
  const url = `iscsi://127.0.0.1:${port}/${IQN}/1`;
  await waitForLun(url, child, logFile, lunBytes(backing));
  return url;
}

// ---------------------------------------------------------------------------------------------
// Measurement

async function qemuBench(url: string, w: Workload, count: number): Promise<Result> {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-c', String(count), '-d', String(w.depth)];
  args.push('-s', String(w.size), '-S', String(w.step));
  if (w.write) args.push('-w', '--pattern=165');
  args.push(url);
  const r = await run('qemu-img', args, 300_000);
  const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout);
  if (r.code !== 0 || m === null) {
    throw new Error(`qemu-img ${args.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
  const seconds = Math.max(Number(m[1]), 0.001); // qemu-img prints milliseconds resolution
  const iops = count / seconds;
  return { iops, mbps: (iops * w.size) / 1e6, count, seconds };
}

const MAX_COUNT = 2_000_000;

async function measure(url: string, w: Workload, targetSeconds: number): Promise<Result> {
  // Probe until a run lasts long enough (0.3 s) for its rate to mean something: a tiny run
  // is dominated by login and ramp-up and would mis-size the measured run.
  let probeCount = Math.max(200, w.depth * 50);
  let probe = await qemuBench(url, w, probeCount);
  while (probe.seconds < 0.3 && probeCount < MAX_COUNT) {
    probeCount = Math.min(MAX_COUNT, probeCount * Math.max(2, Math.ceil(0.4 / probe.seconds)));
    probe = await qemuBench(url, w, probeCount);
  }
  const count = Math.round(Math.min(MAX_COUNT, Math.max(probeCount, probe.iops * targetSeconds)));
  return qemuBench(url, w, count);
}

// ---------------------------------------------------------------------------------------------
// Report

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: readonly string[]): string =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      backing: { type: 'string' },
      quick: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npm run bench -- [--only spindle|tgtd] [--backing ram|null] [--quick] [--seconds N]');
    return 0;
  }
  if (values.only !== undefined && !(TARGETS as readonly string[]).includes(values.only)) {
    console.error(`bench: --only must be one of ${TARGETS.join(', ')}`);
    return 2;
  }
  if (values.backing !== undefined && !(BACKINGS as readonly string[]).includes(values.backing)) {
    console.error(`bench: --backing must be one of ${BACKINGS.join(', ')}`);
    return 2;
  }
  const targets = values.only === undefined ? TARGETS : [values.only as TargetName];
  const backings = values.backing === undefined ? BACKINGS : [values.backing as Backing];
  const targetSeconds = values.seconds !== undefined ? Number(values.seconds) : values.quick ? 1.5 : 6;
  if (!(targetSeconds > 0)) {
    console.error('bench: --seconds must be a positive number');
    return 2;
  }

  const missing = [
    'qemu-img',
    'iscsi-readcapacity16',
    ...(targets.includes('tgtd') ? ['tgtd', 'tgtadm'] : []),
  ].filter((cmd) => !process.env['PATH']?.split(':').some((dir) => existsSync(path.join(dir, cmd))));
  if (missing.length > 0) {
    console.error(`bench: missing ${missing.join(', ')}; run: bash scripts/install-deps.sh`);
    return 1;
  }

  const work = await mkdtemp(path.join(os.tmpdir(), 'spindle-bench-'));
  cleanups.push(() => rm(work, { recursive: true, force: true }));

  /** results[backing][workload][target] */
  const results: Partial<Record<Backing, Record<string, Partial<Record<TargetName, Result>>>>> = {};
  const errors: Record<string, string> = {};
  try {
    for (const b of backings) {
      for (const t of targets) {
        const mark = cleanups.length;
        const what = b === 'ram' ? '1 GiB RAM LUN' : '1 TiB null LUN';
        try {
          console.error(`bench: starting ${t} (${what})`);
          const url = t === 'spindle' ? await startSpindle(work, b) : await startTgtd(work, b);
          for (const w of WORKLOADS) {
            const r = await measure(url, w, targetSeconds);
            ((results[b] ??= {})[w.name] ??= {})[t] = r;
            console.error(
              `bench: ${t.padEnd(7)} ${b.padEnd(4)} ${w.name.padEnd(22)} ${fmt(r.iops).padStart(9)} IOPS ${fmt(r.mbps, 1).padStart(8)} MB/s  (${r.count} requests in ${r.seconds}s)`,
            );
          }
        } catch (err) {
          errors[`${t} (${b})`] = err instanceof Error ? err.message : String(err);
          console.error(`bench: ${t} (${b}) failed: ${errors[`${t} (${b})`]}`);
        } finally {
          // Stop this target before starting the next one: they must not compete for CPU.
          while (cleanups.length > mark)
            await cleanups.pop()!().catch((e: unknown) => console.error(String(e)));
        }
      }
    }
  } finally {
    await runCleanups();
  }

  const header = ['workload', 'spindle IOPS', 'spindle MB/s', 'tgtd IOPS', 'tgtd MB/s', 'spindle/tgtd'];
  for (const b of backings) {
    const rows = WORKLOADS.map((w) => {
      const s = results[b]?.[w.name]?.spindle;
      const g = results[b]?.[w.name]?.tgtd;
      const ratio = s !== undefined && g !== undefined ? `${(s.iops / g.iops).toFixed(2)}x` : '-';
      return [w.name, fmt(s?.iops), fmt(s?.mbps, 1), fmt(g?.iops), fmt(g?.mbps, 1), ratio];
    });
    console.log();
    console.log(
      `qemu-img bench over iscsi://, ${b === 'ram' ? '1 GiB RAM LUN' : '1 TiB null LUN (protocol ceiling)'}, ~${targetSeconds}s per run, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'})`,
    );
    console.log(table([header, ...rows]));
  }
  for (const [t, e] of Object.entries(errors)) console.log(`\n${t} failed: ${e}`);

  const resultsDir = path.join(REPO, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(
    file,
    JSON.stringify(
      { date: new Date().toISOString(), node: process.version, targetSeconds, results, errors },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nresults: ${path.relative(REPO, file)}`);
  return Object.keys(errors).length > 0 ? 1 : 0;
}

process.exitCode = await main();

/**
 * Soak run (issue 12; not part of CI): a target under mixed I/O with connection churn for a
 * while, reporting its resident memory and every worker's connections, tasks and slab use
 * over time, so a leak shows as a line that only goes up.
 *
 *   npm run soak -- [--minutes 10] [--sessions 8] [--every 10]
 *
 * Writes a JSON line per sample to stdout and a summary at the end (first vs last sample,
 * peaks). Exits 1 when the target died, or held tasks or slab blocks once it was idle.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { Status, connectAndLogin, read10, write10 } from '../test/helpers/initiator.ts';
import { startTarget } from '../test/helpers/target.ts';

const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '10' }, sessions: { type: 'string', default: '8' }, every: { type: 'string', default: '10' } },
});
const minutes = Number(values.minutes);
const sessions = Number(values.sessions);
const everySec = Number(values.every);

const t = await startTarget({
  yaml: ({ port, iqn, dir }) => `
logging: { level: info }
devices:
  - name: ram0
    ram: { size: 256MiB }
  - name: file1
    file: { path: ${dir}/file1.img, size: 256MiB }
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: ram0, 1: file1 }
`,
});

function rssMiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${t.proc.pid}/status`, 'utf8'));
  return m === null ? 0 : Math.round(Number(m[1]) / 1024);
}

async function stats(): Promise<unknown> {
  const before = t.output().length;
  t.proc.kill('SIGUSR2');
  for (let i = 0; i < 100; i++) {
    const line = t.output().slice(before).split('\n').find((l) => l.includes('"msg":"worker stats"'));
    if (line !== undefined) return JSON.parse(line);
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

const end = Date.now() + minutes * 60_000;
let ios = 0;
let errors = 0;
let logins = 0;

/** One client: log in, do 50-500 mixed I/Os, log out (or drop), repeat. */
async function client(n: number): Promise<void> {
  while (Date.now() < end) {
    const ini = await connectAndLogin(t.port, t.iqn, { initiatorName: `iqn.2026-11.soak:c${n}` });
    logins++;
    const count = randomInt(50, 500);
    try {
      for (let i = 0; i < count && Date.now() < end; i++) {
        const lun = randomInt(0, 2);
        const blocks = 2 ** randomInt(0, 8);
        const lba = randomInt(0, 500_000 - blocks);
        const r =
          randomInt(0, 2) === 0
            ? await ini.scsi(read10(lba, blocks), { lun, read: true, edtl: blocks * 512 })
            : await ini.scsi(write10(lba, blocks), { lun, write: true, edtl: blocks * 512, data: randomBytes(blocks * 512) });
        ios++;
        if (r.status !== Status.GOOD && (r.sense[2]! & 0x0f) !== 0x06) errors++;
      }
    } catch {
      errors++;
    }
    ini.close();
  }
}

const samples: { t: number; rssMiB: number; ios: number; errors: number; logins: number; stats: unknown }[] = [];
const sampler = setInterval(async () => {
  const s = { t: Math.round((Date.now() - (end - minutes * 60_000)) / 1000), rssMiB: rssMiB(), ios, errors, logins, stats: await stats() };
  samples.push(s);
  process.stdout.write(`${JSON.stringify(s)}\n`);
}, everySec * 1000);

await Promise.all(Array.from({ length: sessions }, (_, i) => client(i)));
clearInterval(sampler);
await new Promise((r) => setTimeout(r, 1000));
const idle = (await stats()) as { sessions: { tasks: number; slabInUse: number }[] } | null;
const first = samples[0];
const last = samples.at(-1);
const held = idle === null || idle.sessions.some((w) => w.tasks !== 0 || w.slabInUse !== 0);
process.stdout.write(
  `${JSON.stringify({ summary: { minutes, sessions, ios, errors, logins, rssFirstMiB: first?.rssMiB, rssLastMiB: last?.rssMiB, rssPeakMiB: Math.max(...samples.map((x) => x.rssMiB)), idle, held } })}\n`,
);
const code = await t.stop();
process.exit(code !== 0 || held ? 1 : 0);

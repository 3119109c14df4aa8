/**
 * Text responses longer than the initiator's MaxRecvDataSegmentLength are sent in parts
 * (RFC 7143 11.11.2): C=1 and a Target Transfer Tag on every part but the last; the
 * initiator asks for each next part with an empty Text Request echoing ITT and TTT.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, freePort, startTarget, type StartedTarget } from '../helpers/target.ts';
import { Initiator, Opcode, RESERVED_TAG, buildText, parseTextPairs, textBhs } from '../helpers/initiator.ts';

const TARGETS = 20;
let t: StartedTarget;
let port2 = 0;

beforeAll(async () => {
  port2 = await freePort();
  t = await startTarget({
    yaml: ({ port }) => {
      const targets = Array.from(
        { length: TARGETS },
        (_, i) => `  - iqn: iqn.2026-11.io.spindle:a-rather-long-target-name-for-discovery-${i}
    portals: ['127.0.0.1:${port}', '127.0.0.1:${port2}']
    luns: { 0: r }`,
      ).join('\n');
      return `devices: [{ name: r, ram: { size: 1MiB } }]\ntargets:\n${targets}\n`;
    },
  });
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe('SendTargets longer than MaxRecvDataSegmentLength', () => {
  it('arrives in C-bit parts that reassemble into every target and address', async () => {
    const ini = await Initiator.connect(t.port);
    try {
      const r = await ini.login({
        initiatorName: 'iqn.2026-11.io.spindle:text',
        sessionType: 'Discovery',
        keys: [['MaxRecvDataSegmentLength', '512']],
      });
      expect(r.ok).toBe(true);
      const itt = ini.allocItt();
      ini.send(textBhs({ immediate: true, itt, cmdSN: ini.cmdSN, expStatSN: ini.expStatSN }), buildText([['SendTargets', 'All']]));
      const parts: Buffer[] = [];
      for (let guard = 0; guard < 100; guard++) {
        const p = await ini.waitFor((x) => x.itt === itt, 3000);
        expect(p.opcode).toBe(Opcode.TEXT_RESPONSE);
        expect(p.data.length).toBeLessThanOrEqual(512);
        parts.push(p.data);
        const final = (p.bhs[1]! & 0x80) !== 0;
        const cont = (p.bhs[1]! & 0x40) !== 0;
        expect(final).toBe(!cont); // F and C are exclusive (RFC 7143 11.11.1)
        if (final) {
          expect(p.ttt).toBe(RESERVED_TAG);
          break;
        }
        expect(p.ttt).not.toBe(RESERVED_TAG);
        ini.send(textBhs({ immediate: true, itt, ttt: p.ttt, cmdSN: ini.cmdSN, expStatSN: ini.expStatSN }));
      }
      expect(parts.length).toBeGreaterThan(3);
      const pairs = parseTextPairs(Buffer.concat(parts));
      const names = pairs.filter(([k]) => k === 'TargetName').map(([, v]) => v);
      expect(names.length).toBe(TARGETS);
      expect(pairs.filter(([k]) => k === 'TargetAddress').length).toBe(TARGETS * 2);
    } finally {
      ini.close();
    }
  });
});

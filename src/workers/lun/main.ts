/**
 * LUN worker thread entry: a LunWorker behind the supervisor's control channel
 * (shared/control/protocols.ts LUN_CONTROL).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../shared/logging.ts';
import { sideB } from '../../shared/control/endpoint.ts';
import { LUN_CONTROL } from '../../shared/control/protocols.ts';
import type { LunWorkerData } from '../../shared/wire/worker-data.ts';
import { LunWorker } from './lun-worker.ts';

const data = workerData as LunWorkerData;
const log = createLogger({ name: 'lun', level: data.logLevel, pretty: data.pretty, bindings: { worker: data.index } });
const worker = new LunWorker(data, log);

const control = sideB(LUN_CONTROL, parentPort!, {
  requests: {
    start: async () => {
      const units = await worker.start();
      void worker.run();
      return { units };
    },
    prepare: (m) => worker.prepare(m),
    commit: (m) => worker.commit(m),
    stop: () => worker.stop(),
    stats: () => worker.stats(),
  },
  notes: {},
});
control.onProtocolError = (problem) => log.error({ problem }, 'control channel: protocol error');

/**
 * Start a node's admin API (config `api`) over its supervisor: the NodeAdmin host and the
 * HTTP server. Called by serve.ts before the supervisor starts, so liveness answers and
 * readiness says "starting" while stores open and the cluster is joined.
 */
import pkg from '../../../package.json' with { type: 'json' };
import type { ApiConfig } from '../../shared/config-types.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Supervisor } from '../supervisor.ts';
import { NodeAdmin } from './node-admin.ts';
import { startAdminServer } from './server.ts';

export interface RunningAdmin {
  /** "host:port" bound. */
  readonly address: string;
  close(): Promise<void>;
}

export async function startAdmin(supervisor: Supervisor, api: ApiConfig, log: Logger): Promise<RunningAdmin> {
  const host = new NodeAdmin(supervisor, { version: pkg.version });
  try {
    const server = await startAdminServer(host, api, log.child({ component: 'api' }));
    return {
      address: server.address,
      close: async () => {
        host.close();
        await server.close();
      },
    };
  } catch (err) {
    host.close();
    throw err;
  }
}

/**
 * `spindle serve`: run a Supervisor until SIGTERM/SIGINT, reloading on SIGHUP.
 */
import type { SpindleConfig } from '../shared/config-types.ts';
import { createLogger } from '../shared/logging.ts';
import { errorMessage } from '../shared/control/errors.ts';
import { Supervisor } from './supervisor.ts';
import type { RunningAdmin } from './admin/start.ts';

export interface ServeOptions {
  pretty: boolean;
  logLevel?: string;
  /** Resolve once the target is ready (tests); serve() itself resolves at exit. */
  onReady?: (handle: RunningTarget) => void;
  /** Install SIGTERM/SIGINT (and, with reloadConfig, SIGHUP) handlers (default true). */
  handleSignals?: boolean;
  /**
   * Re-read the configuration file (SIGHUP). Rejects with a ConfigError (its message
   * names every bad field) when the file is invalid.
   */
  reloadConfig?: () => Promise<SpindleConfig>;
}

export interface RunningTarget {
  stop(): Promise<number>;
  /** Where the admin API listens ("host:port"), when the config has an `api` section. */
  readonly api?: string;
  /** Re-read and apply the configuration, as SIGHUP does. */
  reload(): Promise<void>;
}

/** Serve `config`; resolves with the process exit code. */
export async function serve(config: SpindleConfig, opts: ServeOptions): Promise<number> {
  const logLevel = opts.logLevel ?? config.logging.level;
  const log = createLogger({ name: 'supervisor', level: logLevel, pretty: opts.pretty, bindings: { node: config.nodeId } });
  const supervisor = new Supervisor(config, {
    log,
    logLevel,
    pretty: opts.pretty,
    ...(opts.reloadConfig === undefined ? {} : { reloadConfig: opts.reloadConfig }),
  });
  // Signal handlers before anything starts: without one, a SIGTERM that arrives while the
  // node starts (its admin API, or its readiness line, already out) kills it with the
  // default action instead of stopping it. A signal during startup cancels the start
  // (a cluster node may be waiting for Redis for up to its connect timeout) and the
  // node exits 0; if the start completes all the same, the node stops right after.
  let markStarted!: () => void;
  const started = new Promise<void>((r) => (markStarted = r));
  const startup = new AbortController();
  if (opts.handleSignals !== false) {
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, 'signal received');
      startup.abort(new Error(`${sig} during startup`));
      void started.then(() => supervisor.stop(0));
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
    // SIGUSR2: one log line with what every worker holds (connections, tasks, slab use).
    process.on('SIGUSR2', () => {
      void started.then(() => supervisor.stats()).then(
        (s) => log.info(s, 'worker stats'),
        (err: unknown) => log.warn({ err: errorMessage(err) }, 'worker stats unavailable'),
      );
    });
    if (opts.reloadConfig !== undefined) {
      process.on('SIGHUP', () => {
        log.info({ signal: 'SIGHUP' }, 'reloading the configuration');
        void started.then(() => supervisor.reload());
      });
    }
  }
  // The admin API first: liveness answers while stores open and the cluster is joined.
  let admin: RunningAdmin | null = null;
  if (config.api !== undefined) {
    try {
      const { startAdmin } = await import('./admin/start.ts');
      admin = await startAdmin(supervisor, config.api, log);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'startup failed: nothing is served');
      return 1;
    }
  }
  try {
    await supervisor.start(startup.signal);
  } catch (err) {
    if (startup.signal.aborted) {
      log.info({ reason: errorMessage(startup.signal.reason) }, 'stopped during startup: nothing is served');
      await admin?.close().catch(() => undefined);
      return 0;
    }
    log.error({ err: errorMessage(err) }, 'startup failed: nothing is served');
    await admin?.close().catch(() => undefined);
    return 1;
  }
  markStarted();
  opts.onReady?.({ stop: () => supervisor.stop(0), reload: () => supervisor.reload(), ...(admin === null ? {} : { api: admin.address }) });
  const code = await supervisor.exited;
  await admin?.close().catch(() => undefined);
  return code;
}

/**
 * The spindle entry point: parse arguments, load the configuration, dispatch.
 *
 * Run as `node src/supervisor/main.ts ...` (Node strips the types) or through bin/spindle.js.
 */

import pkg from '../../package.json' with { type: 'json' };
import { describeConfig, EXIT, parseCli } from './cli.ts';
import { ConfigError, loadConfig, secretsExposure } from './config/load.ts';
import type { SpindleConfig } from '../shared/config-types.ts';

/** Runs one command; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const cmd = parseCli(argv);
  switch (cmd.kind) {
    case 'help':
      process.stdout.write(cmd.text);
      return EXIT.ok;
    case 'version':
      process.stdout.write(`spindle ${pkg.version} (node ${process.versions.node})\n`);
      return EXIT.ok;
    case 'usage-error':
      process.stderr.write(`spindle: ${cmd.message}\nRun "spindle --help" for usage.\n`);
      return EXIT.usage;
    case 'check-config': {
      const config = await loadOrReport(cmd.configPath, cmd.node, false, cmd.api);
      if (config === undefined) return EXIT.usage;
      process.stdout.write(`${describeConfig(config, cmd.configPath)}\n`);
      const exposed = await secretsExposure(cmd.configPath);
      if (exposed !== null) process.stderr.write(`spindle: warning: ${exposed}\n`);
      return EXIT.ok;
    }
    case 'cluster-status':
    case 'cluster-recover':
    case 'node-admin': {
      const config = await loadOrReport(cmd.configPath, undefined, true);
      if (config === undefined) return EXIT.usage;
      if (config.cluster === undefined) {
        process.stderr.write(`spindle: ${cmd.configPath} has no cluster section\n`);
        return EXIT.usage;
      }
      const ops = await import('./cluster-commands.ts');
      if (cmd.kind === 'cluster-status') return ops.clusterStatus(config, cmd.json);
      if (cmd.kind === 'cluster-recover') return ops.clusterRecover(config, cmd.apply, cmd.json);
      return ops.nodeAdmin(config, cmd.action, cmd.target, cmd.waitSec, cmd.json);
    }
    case 'api': {
      const config = await loadOrReport(cmd.configPath, undefined, true, cmd.api);
      if (config === undefined) return EXIT.usage;
      if (config.api === undefined) {
        process.stderr.write(`spindle: ${cmd.configPath} has no api section, so the node serves no admin API (add "api: {}", or give --api HOST:PORT)\n`);
        return EXIT.usage;
      }
      const ops = await import('./api-commands.ts');
      const o = {
        json: cmd.json,
        timeoutSec: cmd.timeoutSec,
        ...(cmd.waitSec === undefined ? {} : { waitSec: cmd.waitSec }),
        ...(cmd.force === undefined ? {} : { force: cmd.force }),
      };
      switch (cmd.command) {
        case 'status':
          return ops.statusCommand(config.api, o);
        case 'sessions':
          return ops.sessionsCommand(config.api, o);
        case 'luns':
          return ops.lunsCommand(config.api, o);
        case 'reload':
          return ops.reloadCommand(config.api, o);
        case 'logout':
          return ops.logoutCommand(config.api, cmd.session ?? '', o);
      }
      return EXIT.usage;
    }
    case 'serve': {
      const config = await loadOrReport(cmd.configPath, cmd.node, false, cmd.api);
      if (config === undefined) return EXIT.usage;
      // Loaded only for serve: --help and check-config must work without the worker machinery.
      const { serve } = await import('./serve.ts');
      const exposed = await secretsExposure(cmd.configPath);
      if (exposed !== null) process.stderr.write(`spindle: warning: ${exposed}\n`);
      return serve(config, {
        pretty: cmd.pretty,
        reloadConfig: () =>
          loadConfig(cmd.configPath, { ...(cmd.node === undefined ? {} : { node: cmd.node }), ...(cmd.api === undefined ? {} : { apiListen: cmd.api }) }),
        ...(cmd.logLevel === undefined ? {} : { logLevel: cmd.logLevel }),
      });
    }
  }
}

async function loadOrReport(path: string, node: string | undefined, operator = false, apiListen?: string): Promise<SpindleConfig | undefined> {
  try {
    return await loadConfig(path, { ...(node === undefined ? {} : { node }), ...(operator ? { operator } : {}), ...(apiListen === undefined ? {} : { apiListen }) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`spindle: ${err.message}\n`);
    return undefined;
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(
      `spindle: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    code = EXIT.failure;
  }
  // Exit explicitly: a handle some library forgot to close must not keep a finished
  // process alive. stdout/stderr writes to pipes and files are synchronous on Linux.
  process.exit(code);
}

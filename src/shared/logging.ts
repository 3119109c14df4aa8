/**
 * Logging for every thread: pino writing synchronously to stdout.
 *
 * Synchronous on purpose. pino transports run in their own worker thread, and this is called
 * from inside worker threads too: a worker per worker would be wasteful, and async buffers
 * lose the last lines when a worker crashes, which are exactly the lines one needs. Each line
 * is one write(2) of a complete record, so lines from several threads never interleave
 * mid-line (pipe writes up to PIPE_BUF are atomic). Hot paths log at debug/trace, which pino
 * skips without formatting when the level is above them.
 */

import { isatty } from 'node:tty';
import { isMainThread, threadId } from 'node:worker_threads';
import pino from 'pino';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import pinoPretty from 'pino-pretty';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** Component name, e.g. "supervisor" or "session-worker". */
  readonly name: string;
  /** trace | debug | info | warn | error | fatal | silent. */
  readonly level: string;
  /** Human-readable colourised lines instead of JSON. */
  readonly pretty: boolean;
  /** Fields added to every line. */
  readonly bindings?: object;
  /** Where lines go; stdout (fd 1) by default. Tests pass a stream to capture output. */
  readonly destination?: DestinationStream;
}

const STDOUT_FD = 1;

export function isLogLevel(level: string): boolean {
  return level === 'silent' || Object.hasOwn(pino.levels.values, level);
}

export function createLogger(opts: LoggerOptions): Logger {
  if (!isLogLevel(opts.level)) {
    throw new RangeError(
      `unknown log level "${opts.level}" (expected one of ${Object.keys(pino.levels.values).join(', ')}, silent)`,
    );
  }
  const destination = opts.pretty ? prettyStream(opts.destination) : (opts.destination ?? jsonStream());
  // Worker threads share the pid: tag their lines with the thread id so they can be told apart.
  const base = {
    pid: process.pid,
    ...(isMainThread ? {} : { thread: threadId }),
    ...opts.bindings,
  };
  return pino(
    {
      name: opts.name,
      level: opts.level,
      base,
      // An error under any key is serialised with its stack, not as {}.
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
      // Secrets never reach a log line, however deep a logged object holds them (CHAP
      // secrets, Redis passwords, API tokens; issue 12).
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}

const SECRET_KEYS = ['secret', 'password', 'token'];
/** Secret keys at the top of a logged object and up to three levels inside it. */
const REDACTED_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

function jsonStream(): DestinationStream {
  // sonic-boom writing to fd 1 directly: inside a worker thread, process.stdout is a pipe
  // to the main thread that is only drained while the main event loop runs.
  return pino.destination({ dest: STDOUT_FD, sync: true });
}

function prettyStream(to?: DestinationStream): DestinationStream {
  return pinoPretty({
    sync: true,
    destination: to ?? STDOUT_FD,
    // The terminal decides, not process.stdout.isTTY, which worker threads see as false.
    colorize: to === undefined && isatty(STDOUT_FD),
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: false,
  });
}

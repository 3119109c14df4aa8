/**
 * One spawned worker thread as the supervisor sees it: the Worker, its typed control
 * endpoint, and how it ended. Exits and errors are reported once to `onExit`, and the
 * endpoint is closed so pending requests fail at once instead of timing out.
 */
import { Worker, type Transferable } from 'node:worker_threads';
import type { Logger } from '../shared/logging.ts';
import { sideA, type ControlEndpoint, type Handlers, type Protocol } from '../shared/control/endpoint.ts';

export type WorkerKind = 'lun' | 'session' | 'portal';

const ENTRY: Record<WorkerKind, URL> = {
  lun: new URL('../workers/lun/main.ts', import.meta.url),
  session: new URL('../workers/session/main.ts', import.meta.url),
  portal: new URL('../workers/fabric/iscsi/main.ts', import.meta.url),
};

export class WorkerHandle<P extends Protocol> {
  readonly kind: WorkerKind;
  readonly index: number;
  readonly worker: Worker;
  readonly control: ControlEndpoint<P['a'], P['b']>;
  /** Resolves with the exit code once the thread has ended. */
  readonly exited: Promise<number>;
  #alive = true;

  constructor(
    kind: WorkerKind,
    index: number,
    protocol: P,
    workerData: unknown,
    transferList: Transferable[],
    handlers: NoInfer<Handlers<P['a']>>,
    log: Logger,
    onExit: (h: WorkerHandle<P>, code: number) => void,
  ) {
    this.kind = kind;
    this.index = index;
    this.worker = new Worker(ENTRY[kind], { workerData, transferList, name: `${kind}-${index}` });
    this.control = sideA(protocol, this.worker, handlers);
    const name = `${kind}-${index}`;
    this.control.onProtocolError = (problem) => log.error({ worker: name, problem }, 'control channel: protocol error');
    this.worker.on('error', (err: Error) => log.error({ worker: name, err: err.message, stack: err.stack }, 'worker crashed'));
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        this.#alive = false;
        this.control.close(`${name} exited with code ${code}`);
        onExit(this, code);
        resolve(code);
      });
    });
  }

  get name(): string {
    return `${this.kind}-${this.index}`;
  }

  get alive(): boolean {
    return this.#alive;
  }

  terminate(): Promise<number> {
    return this.worker.terminate().catch(() => 0);
  }
}

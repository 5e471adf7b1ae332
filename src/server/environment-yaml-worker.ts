import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import {
  composeEnvironmentYaml,
  ENVIRONMENT_YAML_LIMITS,
  type ComposeResult,
  type EnvironmentYamlLimits,
} from '../domain/environment/environment-yaml.js';
import {
  composeEnvironmentBody,
  valueLimitIssue,
  type EnvironmentBodyResult,
} from '../domain/environment/environment-json.js';

/**
 * Environment files, and the JSON bodies of the environment routes, are parsed on a worker
 * thread, never on the server's event loop (which also answers `/health` and runs the egress
 * proxies): even within the limits of environment-yaml.ts the YAML library takes tens of
 * milliseconds for a few thousand keys, and `JSON.parse` with the key count about 50 ms for a
 * body of 40,000 keys.
 *
 * Threat model. A caller sends the worst text the limits allow, many of them, or one that makes
 * the library misbehave. One worker, one parse at a time (callers queue); a parse that takes
 * longer than `ENVIRONMENT_YAML_TIMEOUT_MS` is refused and the worker replaced; the worker's heap
 * is capped, and a worker that dies is replaced (its parse refused). The event loop only copies
 * the text over and the composed value (bounded by the limits) back.
 *
 * The worker runs the source of `composeEnvironmentYaml`, `composeEnvironmentBody` and
 * `valueLimitIssue` themselves (they use only their arguments), with the `yaml` package this
 * module resolves: no second copy of the logic.
 */

export const ENVIRONMENT_YAML_TIMEOUT_MS = 2_000;
const WORKER_HEAP_MB = 256;

/** What the worker is asked: a YAML file, or a JSON body with its fields. */
type WorkerRequest =
  | { kind: 'yaml'; text: string; limits: EnvironmentYamlLimits; withPositions: boolean }
  | { kind: 'json'; text: string; limits: EnvironmentYamlLimits; fields: readonly string[] };

interface Job {
  request: WorkerRequest;
  resolve(result: unknown): void;
  reject(error: Error): void;
  /** What the refusals below call the text: the file, the request body. */
  subject: string;
  /** The answer when the worker fails or takes too long. */
  refuse(message: string): unknown;
}

type WorkerAnswer = { result: unknown } | { error: string };

function workerSource(yamlPath: string): string {
  return `
const { parentPort } = require('node:worker_threads');
const yaml = require(${JSON.stringify(yamlPath)});
const compose = (${composeEnvironmentYaml.toString()});
const valueLimitIssue = (${valueLimitIssue.toString()});
const composeBody = (${composeEnvironmentBody.toString()});
parentPort.on('message', (request) => {
  try {
    const { text, limits } = request;
    parentPort.postMessage({
      result:
        request.kind === 'json'
          ? composeBody(text, limits, request.fields, valueLimitIssue)
          : compose(yaml, text, limits, request.withPositions),
    });
  } catch (error) {
    parentPort.postMessage({ error: String((error && error.message) || error) });
  }
});
`;
}

function refused(message: string): ComposeResult {
  return { ok: false, issues: [{ path: '(root)', message }] };
}

function bodyRefused(message: string): EnvironmentBodyResult {
  return { ok: false, refusal: 'body', issue: { path: [], message } };
}

export class EnvironmentYamlWorker {
  private worker: Worker | undefined;
  private readonly queue: Job[] = [];
  private running: { job: Job; timer: NodeJS.Timeout } | undefined;
  private readonly yamlPath = createRequire(import.meta.url).resolve('yaml');

  constructor(private readonly timeoutMs = ENVIRONMENT_YAML_TIMEOUT_MS) {}

  /**
   * The text composed as environment-yaml.ts does, on the worker; without the positions unless
   * asked (they are only needed to locate a refusal, and copying them back costs the event loop).
   */
  compose(
    text: string,
    limits = ENVIRONMENT_YAML_LIMITS,
    withPositions = false,
  ): Promise<ComposeResult> {
    // The size needs no parse: refused here, without a round trip.
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > limits.maxBytes)
      return Promise.resolve(
        refused(`the file is ${bytes} bytes; at most ${limits.maxBytes} are accepted`),
      );
    return this.run<ComposeResult>(
      { kind: 'yaml', text, limits, withPositions },
      'the file',
      refused,
    );
  }

  /**
   * A JSON body of an environment route parsed and held to the limits, on the worker (see
   * environment-json.ts); `fields` are the body's own fields. Its size is the request's (1 MiB).
   */
  composeJsonBody(
    text: string,
    fields: readonly string[],
    limits = ENVIRONMENT_YAML_LIMITS,
  ): Promise<EnvironmentBodyResult> {
    return this.run<EnvironmentBodyResult>(
      { kind: 'json', text, limits, fields },
      'the request body',
      bodyRefused,
    );
  }

  private run<T>(
    request: WorkerRequest,
    subject: string,
    refuse: (message: string) => T,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const answer = resolve as (result: unknown) => void;
      this.queue.push({ request, resolve: answer, reject, subject, refuse });
      this.next();
    });
  }

  /** Stops the worker (the next compose starts a new one). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private start(): Worker {
    const worker = new Worker(workerSource(this.yamlPath), {
      eval: true,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    });
    worker.on('message', (answer: WorkerAnswer) => {
      if (this.worker !== worker) return;
      const running = this.finish();
      if (!running) return;
      if ('result' in answer) running.resolve(answer.result);
      else running.reject(new Error(`environment file parser: ${answer.error}`));
    });
    // A worker that fails or stops (its heap cap, a crash) is replaced; its parse is refused.
    worker.on('error', (error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const job = this.finish();
      job?.resolve(job.refuse(`${job.subject} could not be parsed (${error.message})`));
    });
    worker.on('exit', () => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const job = this.finish();
      job?.resolve(job.refuse(`${job.subject} could not be parsed (the parser stopped)`));
    });
    return worker;
  }

  /** Ends the running job (if any) and starts the next; returns the ended job. */
  private finish(): Job | undefined {
    const running = this.running;
    this.running = undefined;
    if (running) clearTimeout(running.timer);
    // An idle worker does not keep the process alive.
    this.worker?.unref();
    queueMicrotask(() => this.next());
    return running?.job;
  }

  private next(): void {
    if (this.running) return;
    const job = this.queue.shift();
    if (!job) return;
    this.worker ??= this.start();
    const worker = this.worker;
    worker.ref();
    const timer = setTimeout(() => {
      if (this.running?.job !== job) return;
      this.running = undefined;
      this.worker = undefined;
      void worker.terminate();
      job.resolve(job.refuse(`${job.subject} took longer than ${this.timeoutMs} ms to parse`));
      this.next();
    }, this.timeoutMs);
    timer.unref();
    this.running = { job, timer };
    worker.postMessage(job.request);
  }
}

import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import type { SecretMasker } from '../secrets/secret-masker.js';

/** What every step of an attempt works with: one running sandbox and the attempt's log. */
export interface SandboxContext {
  runtime: SandboxRuntime;
  sandboxId: string;
  /** The repository's root inside the sandbox. */
  workdir: string;
  /** Appends an event to the attempt's log; texts given here are already masked. */
  emit: (event: AttemptEventBody) => void;
  masker: SecretMasker;
  signal: AbortSignal;
}

import type { InternetPolicy } from '../domain/environment/environment-spec.js';
import type { InjectedCredential } from '../domain/internet/injected-credentials.js';
import type { AttemptEventBody } from '../domain/task/attempt-event.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';

/**
 * The internet lockdown seam (DESIGN §2 step 4): before the agent phase the sandbox leaves the
 * setup network and gets the environment's policy. The egress proxy's enforcer implements this
 * interface; until it is wired, `NoNetworkEnforcer` applies "no network at all".
 */
export interface LockdownContext {
  runtime: SandboxRuntime;
  sandboxId: string;
  /** The per-attempt network used during setup: the public internet only (null: it had none). */
  setupNetwork: string | null;
  policy: InternetPolicy;
  attemptId: string;
  /** The environment the attempt belongs to (its egress CA is the environment's). */
  environmentId: string;
  /**
   * The image the attempt started from before anything of an agent ran in it: the cache entry's
   * image, or the base image (a follow-up gives its environment's, never its parent's snapshot).
   * The `common-dependencies` preset's registries are read from it, not from the sandbox. Asked
   * for only when the policy needs it (a follow-up looks its environment's entry up then).
   */
  startImage?: (() => Promise<string | undefined>) | undefined;
  /**
   * The headers the proxy sets from `internet.credentials` (secret values: for the proxy only,
   * never written into the sandbox, an event or a log).
   */
  credentials?: readonly InjectedCredential[] | undefined;
  emit: (event: AttemptEventBody) => void;
  signal?: AbortSignal | undefined;
}

export interface LockdownResult {
  /** Variables every later command gets (proxy settings, CA bundle paths). */
  env: Record<string, string>;
}

/** A sandbox about to be committed as a cache entry (after its setup script). */
export interface CacheImageContext {
  runtime: SandboxRuntime;
  sandboxId: string;
  environmentId: string;
  policy: InternetPolicy;
  signal?: AbortSignal | undefined;
}

export interface CacheImagePreparation {
  /** Labels the cache image is committed with. */
  labels?: Record<string, string>;
}

export interface NetworkPolicyEnforcer {
  lockdown(context: LockdownContext): Promise<LockdownResult>;
  /**
   * Puts what every later lockdown of the environment would install anyway (the CA's
   * certificate in the trust store) into the cache image once, and gives labels for the image
   * (what later lockdowns read from it). Optional; a failure only costs the lockdowns that time.
   */
  prepareCacheImage?(context: CacheImageContext): Promise<CacheImagePreparation | undefined>;
  /** Releases what `lockdown` made for the attempt (called when the attempt ends). */
  release(attemptId: string): Promise<void>;
}

/**
 * Threat model: after lockdown the sandbox runs untrusted agent commands. This enforcer removes
 * its only network interface besides loopback, so nothing leaves the sandbox whatever the policy
 * asks for; a policy that would allow more is narrowed (and the log says so), never widened.
 */
export class NoNetworkEnforcer implements NetworkPolicyEnforcer {
  async lockdown(context: LockdownContext): Promise<LockdownResult> {
    if (context.setupNetwork !== null)
      await context.runtime.disconnect(context.sandboxId, context.setupNetwork);
    if (context.policy.access !== 'off') {
      context.emit({
        type: 'warning',
        message: `internet access "${context.policy.access}" is not available yet: the sandbox has no network during the agent phase`,
      });
    }
    return { env: {} };
  }

  async release(): Promise<void> {}
}

/**
 * Threat model. After lockdown the sandbox runs untrusted agent commands that may try to reach
 * anything: the outside world directly, the host's services (the Berth API, the Docker API),
 * other sandboxes, metadata addresses. This enforcer is what puts the sandbox behind the egress
 * proxy for the policies `allowlist` and `on` (policy `off` is `NoNetworkEnforcer`: no network).
 *
 * Trusted: the orchestrator's configuration (upstream CAs, the operator's host map and address
 * allowances), the runtime, the host's netfilter, the image an attempt started from (the cache
 * entry's, committed right after setup, or the base image). Untrusted: the sandbox, including the
 * files it holds. The npm and apt settings that widen the `common-dependencies` preset are read
 * from that image (its label, or a short-lived sandbox made from it), never from the attempt's
 * sandbox nor with the repository's npm config; they never widen the address checks.
 *
 * Guarantees, per attempt:
 * - the sandbox leaves its setup network and joins a fresh `--internal` network of its own;
 * - the firewall pins that network to the proxy's port on the gateway address before the sandbox
 *   is connected, so there is no moment in which it reaches anything else;
 * - the proxy, listening on the gateway address, applies the environment's policy; every
 *   decision goes to the attempt's log;
 * - the CA is the environment's (EnvironmentCertificateAuthorities: key in this process and,
 *   sealed, in the store); only its certificate is written into the sandbox;
 * - `internet.credentials` values go to the proxy only (this process); the log names their
 *   hosts and headers, never a value; `internet.budget` is the proxy's, so per attempt;
 * - a lockdown that fails halfway undoes what it made, and the error fails the attempt (the
 *   agent never runs with less than the policy asks for); `release` undoes everything, and
 *   both are safe to repeat.
 */
import { createHash } from 'node:crypto';
import {
  IptablesFirewall,
  type FirewallInstallReport,
  type SandboxNetworkFirewallSpec,
} from '../adapters/firewall/iptables-firewall.js';
import { EgressPolicy } from '../domain/internet/egress-policy.js';
import { budgetLimits } from './egress-budget.js';
import { normaliseHostName } from '../domain/internet/host-name.js';
import type { ImagePackageConfiguration } from '../domain/internet/preset-hosts.js';
import { BerthError, toBerthError } from '../errors/berth-error.js';
import {
  NoNetworkEnforcer,
  type CacheImageContext,
  type CacheImagePreparation,
  type LockdownContext,
  type LockdownResult,
  type NetworkPolicyEnforcer,
} from '../lifecycle/network-policy-enforcer.js';
import { BERTH_LABELS } from '../runtime/labels.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import {
  EnvironmentCertificateAuthorities,
  type CertificateAuthoritySource,
} from './environment-certificate-authorities.js';
import { EgressProxy, systemResolver, type Resolver } from './egress-proxy.js';
import {
  packageConfigurationFromLabels,
  packageConfigurationLabels,
  readImagePackageConfiguration,
  readPackageConfiguration,
} from './read-image-package-configuration.js';
import { DEFAULT_CA_CERTIFICATE_PATH, sandboxProxySettings } from './sandbox-proxy-settings.js';
import { egressBridgeName, sweepStaleEgressRules } from './sweep-stale-egress-rules.js';
import type { UpstreamProxySettings } from './upstream-proxy.js';

/** The firewall the enforcer drives (IptablesFirewall; injectable for other hosts). */
export interface SandboxNetworkFirewall {
  /** May report what it could not install (IptablesFirewall: the IPv6 rules without ip6tables). */
  install(
    spec: SandboxNetworkFirewallSpec,
    signal?: AbortSignal,
  ): Promise<FirewallInstallReport | undefined | void>;
  remove(spec: SandboxNetworkFirewallSpec, signal?: AbortSignal): Promise<void>;
}

export interface EgressEnforcerOptions {
  /** PEM certificates trusted for upstream servers besides the system roots (`extraCaFiles`, read once). */
  upstreamCa?: readonly string[];
  /**
   * Names the proxy resolves itself, before DNS (`BERTH_EGRESS_HOSTS`): normalised name →
   * address. The answer is still vetted by the address guard.
   */
  hosts?: Readonly<Record<string, string>>;
  /** Address ranges (CIDR) the guard allows for every host (`BERTH_EGRESS_ALLOW`). */
  allow?: readonly string[];
  /** Ports allowed besides 443 (CONNECT) and 80 (plain HTTP), for both (`BERTH_EGRESS_PORTS`). */
  extraPorts?: readonly number[];
  /**
   * The corporate proxy the egress proxy goes out through (HTTPS_PROXY/HTTP_PROXY/NO_PROXY or
   * `BERTH_UPSTREAM_PROXY` in the server's environment); setup reaches it directly.
   */
  upstreamProxy?: UpstreamProxySettings | undefined;
  firewall?: SandboxNetworkFirewall;
  /** The resolver behind `hosts` (the system resolver by default). */
  resolver?: Resolver;
  /**
   * Each environment's CA (kept in the store by the orchestrator). Default: one per environment
   * in this process's memory only.
   */
  certificateAuthorities?: CertificateAuthoritySource;
}

interface AttemptEgress {
  network?: string;
  firewallSpec?: SandboxNetworkFirewallSpec;
  firewallInstalled?: boolean;
  proxy?: EgressProxy;
  released: boolean;
}

/** A short, stable id for the attempt's network resources (chain and bridge names). */
function networkIdOf(attemptId: string): string {
  return createHash('sha256').update(attemptId).digest('hex').slice(0, 12);
}

export class EgressEnforcer implements NetworkPolicyEnforcer {
  private readonly options: EgressEnforcerOptions;
  private readonly firewall: SandboxNetworkFirewall;
  private readonly resolver: Resolver;
  private readonly authorities: CertificateAuthoritySource;
  private readonly noNetwork = new NoNetworkEnforcer();
  private readonly attempts = new Map<string, AttemptEgress>();
  private readonly runtimes = new Map<string, SandboxRuntime>();
  /** Package configurations read from images without the label, by image id (images are immutable). */
  private readonly imageConfigurations = new Map<string, Promise<ImagePackageConfiguration>>();
  /** Rules left by an orchestrator that died mid-attempt are swept once, at the first lockdown. */
  private swept: Promise<string[]> | undefined;

  constructor(options: EgressEnforcerOptions = {}) {
    this.options = options;
    this.firewall = options.firewall ?? new IptablesFirewall();
    this.authorities = options.certificateAuthorities ?? new EnvironmentCertificateAuthorities();
    const hosts = new Map<string, string>();
    for (const [name, address] of Object.entries(options.hosts ?? {})) {
      const normalised = normaliseHostName(name);
      if (!normalised.ok)
        throw new BerthError('invalid_input', `egress hosts: "${name}" is not a host name`);
      hosts.set(normalised.name, address);
    }
    const fallback = options.resolver ?? systemResolver;
    this.resolver = async (host, signal) => {
      const mapped = hosts.get(host);
      return mapped !== undefined ? [mapped] : fallback(host, signal);
    };
  }

  async lockdown(context: LockdownContext): Promise<LockdownResult> {
    if (context.policy.access === 'off') return this.noNetwork.lockdown(context);
    const { runtime, sandboxId, attemptId, signal } = context;
    const startedAt = Date.now();
    this.swept ??= sweepStaleEgressRules({ firewall: this.firewall }).catch((error: unknown) => {
      context.emit({
        type: 'warning',
        message: `could not sweep stale egress firewall rules: ${toBerthError(error).message}`,
      });
      return [];
    });
    await this.swept;
    if (this.attempts.has(attemptId)) await this.release(attemptId);
    const state: AttemptEgress = { released: false };
    this.attempts.set(attemptId, state);
    this.runtimes.set(attemptId, runtime);
    const timings: string[] = [];
    const timed = async <T>(what: string, step: () => Promise<T>): Promise<T> => {
      const at = Date.now();
      const value = await step();
      timings.push(`${what} ${Date.now() - at}`);
      return value;
    };
    try {
      const id = networkIdOf(attemptId);
      const name = `berth-egress-${attemptId.replace(/_/g, '-')}`;
      state.network = name;
      // Independent steps at once; every one is waited for (settled) before anything is undone.
      const [image, network, ca] = await allSettledOrThrow([
        // The registries of the image the attempt started from (never of this sandbox); only the
        // common-dependencies preset uses them.
        timed('read-image', () =>
          context.policy.access === 'allowlist' && context.policy.presets.length > 0
            ? this.imagePackageConfiguration(context)
            : Promise.resolve<ImagePackageConfiguration & { from?: string }>({}),
        ),
        timed('network', () =>
          runtime.createNetwork({
            name,
            internal: true,
            bridgeName: egressBridgeName(id),
            labels: { [BERTH_LABELS.attempt]: attemptId, [BERTH_LABELS.kind]: 'network' },
          }),
        ),
        timed('ca', () => this.authorities.forEnvironment(context.environmentId)),
        // Leaving the setup network first: the sandbox joins the pinned network only below.
        timed('leave-setup', async () => {
          if (context.setupNetwork !== null)
            await runtime.disconnect(sandboxId, context.setupNetwork);
        }),
      ] as const);
      if (network.gateway === undefined || network.subnet === undefined) {
        throw new BerthError(
          'runtime_unavailable',
          `the sandbox network ${name} has no IPv4 gateway`,
        );
      }
      signal?.throwIfAborted();
      const extra = this.options.extraPorts ?? [];
      const policy = EgressPolicy.forEnvironment(
        context.policy,
        image,
        extra.length > 0 ? { tunnel: extra, http: extra } : undefined,
      );

      const budget = budgetLimits(context.policy.budget);
      const credentials = context.credentials ?? [];
      const proxy = new EgressProxy({
        policy,
        ca,
        ...(credentials.length > 0 ? { credentials } : {}),
        ...(budget !== undefined ? { budget } : {}),
        resolver: this.resolver,
        ...(this.options.upstreamProxy !== undefined
          ? { upstreamProxy: this.options.upstreamProxy }
          : {}),
        ...(this.options.upstreamCa !== undefined ? { upstreamCa: this.options.upstreamCa } : {}),
        ...(this.options.allow !== undefined && this.options.allow.length > 0
          ? { guard: { allow: this.options.allow.map((range) => ({ range })) } }
          : {}),
        onDecision: (decision) => {
          if (state.released) return;
          context.emit({
            type: 'egress',
            host: decision.host,
            port: decision.port,
            method: decision.method,
            scheme: decision.scheme,
            allowed: decision.allowed,
            rule: decision.rule,
            reason: decision.reason,
          });
        },
      });
      state.proxy = proxy;
      const address = await proxy.listen({
        host: network.gateway,
        ...(signal !== undefined ? { signal } : {}),
      });

      const spec: SandboxNetworkFirewallSpec = {
        networkId: id,
        bridge: egressBridgeName(id),
        subnet: network.subnet,
        proxyAddress: network.gateway,
        proxyPort: address.port,
      };
      state.firewallSpec = spec;
      state.firewallInstalled = true;
      const settings = sandboxProxySettings({
        proxyUrl: `http://${network.gateway}:${address.port}`,
        caCertificatePem: ca.certificatePem,
      });
      await allSettledOrThrow([
        // Only once the firewall pins the network does the sandbox join it.
        (async () => {
          const report = await timed('firewall', () => this.firewall.install(spec, signal));
          if (report?.ipv6Skipped === true) {
            context.emit({
              type: 'warning',
              message:
                'ip6tables is not usable on this host: the IPv6 firewall rules for the sandbox network were skipped (the network has no IPv6; install ip6tables to have the rules too)',
            });
          }
          signal?.throwIfAborted();
          await timed('join', () => runtime.connect(sandboxId, name));
        })(),
        // The trust store and the settings files need no network: written meanwhile.
        timed('trust', async () => {
          if (await this.writeSettings(runtime, sandboxId, settings, signal))
            timings.push('CA already in the image');
        }),
      ] as const);
      const grantNote =
        (credentials.length > 0
          ? `; credentials set by the proxy for ${credentials.map((c) => `${c.host} (${c.header})`).join(', ')}`
          : '') +
        ((context.policy.rules?.length ?? 0) > 0
          ? `; ${context.policy.rules?.length} method and path rule(s)`
          : '') +
        (budget !== undefined
          ? `; budget ${Object.entries(context.policy.budget ?? {})
              .map(([k, v]) => `${k} ${String(v)}`)
              .join(', ')}`
          : '');
      const presetNote =
        context.policy.presets.length > 0
          ? `; from the image ${image.from ?? '(unknown)'}: npm registry ${image.npmRegistry ?? '(none)'}, apt sources ${image.aptSources !== undefined ? 'read' : '(none)'}`
          : '';
      context.emit({
        type: 'log',
        stream: 'system',
        text: `internet ${context.policy.access}: the sandbox reaches only the egress proxy at ${network.gateway}:${address.port}${presetNote}${grantNote} (lockdown took ${Date.now() - startedAt} ms: ${timings.join(', ')})\n`,
      });
      return { env: settings.env };
    } catch (error) {
      // Undo what was made; the network goes once the sandbox has left it (here, or after the
      // runner removed the sandbox and calls `release` again).
      if (state.network !== undefined)
        await runtime.disconnect(sandboxId, state.network).catch(() => undefined);
      await this.release(attemptId).catch(() => undefined);
      throw toBerthError(error);
    }
  }

  /**
   * A sandbox about to become its environment's cache image (right after setup): its package
   * configuration becomes the image's label (every policy), and the environment's CA goes into it
   * (policies `allowlist` and `on`), so the lockdowns of attempts from it find it there (the trust
   * script's marker) and skip the work; `update-ca-certificates` with hooks (Java) is what this
   * saves most. The certificate only, as at lockdown; apt's proxy file is per attempt and written
   * then.
   */
  async prepareCacheImage(context: CacheImageContext): Promise<CacheImagePreparation | undefined> {
    // The package configuration right after setup, before any agent, whatever the policy (a
    // policy changed later keeps the cache entry): recorded on the image, so a lockdown from it
    // reads a label instead of starting a sandbox. Not recorded when the read fails: lockdowns
    // then read the image themselves.
    const reading = readPackageConfiguration(
      context.runtime,
      context.sandboxId,
      context.signal,
    ).then(packageConfigurationLabels, () => undefined);
    if (context.policy.access !== 'off') await this.putCaIntoCacheImage(context);
    const labels = await reading;
    return labels !== undefined ? { labels } : {};
  }

  private async putCaIntoCacheImage(context: CacheImageContext): Promise<void> {
    const ca = await this.authorities.forEnvironment(context.environmentId);
    const settings = sandboxProxySettings({
      // Only the trust part is used: the proxy's address is not known before an attempt.
      proxyUrl: 'http://127.0.0.1:9',
      caCertificatePem: ca.certificatePem,
    });
    await this.writeSettings(
      context.runtime,
      context.sandboxId,
      { ...settings, files: settings.files.filter((f) => f.path === DEFAULT_CA_CERTIFICATE_PATH) },
      context.signal,
    );
  }

  /**
   * The package configuration of the image the attempt started from: the label its cache build
   * wrote, else read once per image id in a short-lived sandbox made from it. Never read from the
   * attempt's own sandbox. A read that fails allows no image registries (a warning says so).
   */
  private async imagePackageConfiguration(
    context: LockdownContext,
  ): Promise<ImagePackageConfiguration & { from?: string }> {
    const { runtime, signal } = context;
    const warn = (why: string): ImagePackageConfiguration => {
      context.emit({
        type: 'warning',
        message: `the common-dependencies preset gets no npm or apt registry from the image: ${why}`,
      });
      return {};
    };
    const image = await context.startImage?.();
    if (image === undefined) return warn('the image the attempt started from is not known');
    try {
      const info = await runtime.inspectImage(image);
      const labelled = packageConfigurationFromLabels(info.labels);
      if (labelled !== undefined) return { ...labelled, from: image };
      let reading = this.imageConfigurations.get(info.id);
      if (reading === undefined) {
        reading = readImagePackageConfiguration(
          runtime,
          info.id,
          { [BERTH_LABELS.attempt]: context.attemptId },
          signal,
        );
        this.imageConfigurations.set(info.id, reading);
        reading.catch(() => this.imageConfigurations.delete(info.id));
        if (this.imageConfigurations.size > 256) {
          const oldest = this.imageConfigurations.keys().next().value;
          if (oldest !== undefined) this.imageConfigurations.delete(oldest);
        }
      }
      return { ...(await reading), from: image };
    } catch (error) {
      signal?.throwIfAborted();
      return warn(`reading ${image} failed: ${toBerthError(error).message}`);
    }
  }

  /**
   * The CA certificate, apt's proxy file and the trust commands, in the sandbox as root. True
   * when the trust script found this CA installed already.
   */
  private async writeSettings(
    runtime: SandboxRuntime,
    sandboxId: string,
    settings: ReturnType<typeof sandboxProxySettings>,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    let present = false;
    const dirs = [...new Set(settings.files.map((f) => f.path.slice(0, f.path.lastIndexOf('/'))))];
    await runtime.exec(sandboxId, {
      argv: ['mkdir', '-p', ...dirs],
      user: 'root',
      timeoutMs: 30_000,
      ...(signal !== undefined ? { signal } : {}),
    });
    await Promise.all(
      settings.files.map((file) =>
        runtime.writeFile(sandboxId, file.path, file.content, file.mode),
      ),
    );
    for (const argv of settings.commands) {
      const result = await runtime.exec(sandboxId, {
        argv,
        user: 'root',
        timeoutMs: 60_000,
        maxOutputBytes: 16 * 1024,
        ...(signal !== undefined ? { signal } : {}),
      });
      if (result.exitCode !== 0) {
        throw new BerthError('runtime_unavailable', `lockdown: ${argv[0]} failed in the sandbox`, {
          exitCode: result.exitCode,
          output: result.output.slice(-2000),
        });
      }
      if (result.stdout.trim() === 'present') present = true;
    }
    return present;
  }

  async release(attemptId: string): Promise<void> {
    const state = this.attempts.get(attemptId);
    const runtime = this.runtimes.get(attemptId);
    if (state === undefined) return;
    state.released = true;
    const failures: string[] = [];
    const attempt = async (what: string, step: () => Promise<void>) => {
      try {
        await step();
      } catch (error) {
        failures.push(`${what}: ${toBerthError(error).message}`);
      }
    };
    const { proxy, firewallSpec, network } = state;
    if (proxy !== undefined) await attempt('proxy', () => proxy.close());
    if (firewallSpec !== undefined && state.firewallInstalled === true)
      await attempt('firewall', () => this.firewall.remove(firewallSpec));
    // The runner removes the sandbox first; while a container is still attached the removal fails,
    // the state is kept and a later `release` finishes the job.
    if (network !== undefined && runtime !== undefined)
      await attempt('network', () => runtime.removeNetwork(network));
    if (failures.length > 0) {
      throw new BerthError(
        'runtime_unavailable',
        `egress release incomplete: ${failures.join('; ')}`,
      );
    }
    this.attempts.delete(attemptId);
    this.runtimes.delete(attemptId);
  }
}

/** Like Promise.all, but waits for every step to settle before throwing the first failure. */
async function allSettledOrThrow<T extends readonly unknown[]>(steps: {
  readonly [K in keyof T]: Promise<T[K]>;
}): Promise<T> {
  const settled = await Promise.allSettled(steps);
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

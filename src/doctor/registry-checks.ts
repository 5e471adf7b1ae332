import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { parseEnvironmentSpec } from '../domain/environment/environment-file.js';
import { EgressPolicy } from '../domain/internet/egress-policy.js';
import { normaliseHostName } from '../domain/internet/host-name.js';
import { aptSourceUrls, type ImagePackageConfiguration } from '../domain/internet/preset-hosts.js';
import { AddressGuard } from '../egress/address-guard.js';
import {
  packageConfigurationFromLabels,
  readImagePackageConfiguration,
} from '../egress/read-image-package-configuration.js';
import type { SandboxRuntime } from '../ports/sandbox-runtime.js';
import type { DoctorCheck } from './doctor.js';

/**
 * `berth doctor`'s check of the egress proxy's reach to each built image's package registries
 * (issue 19 item 6): the registries an image's own configuration names (npm's `registry`, apt's
 * sources; what the `common-dependencies` preset adds for that image, read the same way), and
 * for each whether the proxy would let a locked-down sandbox reach it under the product's rules:
 * the preset's decision (host and port), the address the name resolves to (the server's
 * `BERTH_EGRESS_HOSTS` first, as the proxy does) against the ranges the proxy refuses by default
 * and the server's `BERTH_EGRESS_ALLOW`, then a TCP connection from this machine (where the
 * proxy runs) to that address. Each failure says the setting or the change that fixes it. No
 * registry's name is known here: they come from the images.
 */

export interface RegistryCheckOptions {
  runtime: Pick<SandboxRuntime, 'inspectImage' | 'create' | 'start' | 'exec' | 'remove'>;
  /** The images to check (references the engine knows). */
  images: readonly string[];
  egressHosts: Readonly<Record<string, string>>;
  egressAllow: readonly string[];
  egressPorts: readonly number[];
  connectTimeoutMs?: number;
}

interface Registry {
  url: string;
  scheme: 'http' | 'https';
  host: string;
  port: number;
}

const PRESET_POLICY = parseEnvironmentSpec({
  name: 'doctor',
  repository: 'https://git.invalid/doctor.git',
  internet: { access: 'allowlist', presets: ['common-dependencies'] },
}).internet;

/** The registries of a configuration, each once (scheme, host and port). */
export function registriesOf(config: ImagePackageConfiguration): Registry[] {
  const urls = [
    ...(config.npmRegistry !== undefined ? [config.npmRegistry] : []),
    ...(config.aptSources !== undefined ? aptSourceUrls(config.aptSources) : []),
  ];
  const out = new Map<string, Registry>();
  for (const raw of urls) {
    let url: URL;
    try {
      url = new URL(raw.replace(/^[a-z0-9]+\+(?=https?:)/i, ''));
    } catch {
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
    const scheme = url.protocol === 'https:' ? 'https' : 'http';
    const port = url.port !== '' ? Number(url.port) : scheme === 'https' ? 443 : 80;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    out.set(`${scheme}://${host}:${port}`, { url: `${scheme}://${url.host}`, scheme, host, port });
  }
  return [...out.values()];
}

function tcpReach(address: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const done = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs / 1000} s`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}

async function imageConfiguration(
  runtime: RegistryCheckOptions['runtime'],
  image: string,
): Promise<ImagePackageConfiguration> {
  // A cache image carries what was read right after its setup; a base image is read in a
  // short-lived sandbox without network.
  const info = await runtime.inspectImage(image);
  return (
    packageConfigurationFromLabels(info.labels) ??
    (await readImagePackageConfiguration(runtime as SandboxRuntime, image, {}))
  );
}

async function checkRegistry(
  registry: Registry,
  image: string,
  policy: EgressPolicy,
  guard: AddressGuard,
  options: RegistryCheckOptions,
): Promise<DoctorCheck> {
  const name = `registry ${registry.url} of ${image}`;
  const fail = (detail: string, fix: string): DoctorCheck => ({ name, ok: false, detail, fix });
  const decision = policy.decide({
    host: registry.host,
    port: registry.port,
    scheme: registry.scheme === 'https' ? 'connect' : 'http',
    method: 'GET',
  });
  if (!decision.allowed)
    return fail(
      `the egress proxy refuses it: ${decision.reason}`,
      normaliseHostName(registry.host).ok
        ? `name the registry on a port the proxy allows in the image's configuration, or add the port to BERTH_EGRESS_PORTS`
        : `name the registry by a host name in the image's configuration (the proxy refuses IP literals)`,
    );
  const host = decision.host ?? registry.host;
  let addresses: string[];
  const mapped = options.egressHosts[host];
  try {
    addresses =
      mapped !== undefined
        ? [mapped]
        : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch (error) {
    return fail(
      `${host} does not resolve on this machine (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      `fix the image's registry setting, or give the proxy its address: BERTH_EGRESS_HOSTS=${host}=ADDRESS`,
    );
  }
  const verdicts = addresses.map((address) => guard.vet(address, host));
  const allowed = verdicts.find((v) => v.allowed);
  if (allowed === undefined) {
    const reasons = verdicts.map((v) => (v.allowed ? '' : `${v.address}: ${v.reason}`));
    const opens = verdicts.filter((v) => !v.allowed && v.reason.includes('BERTH_EGRESS_ALLOW'));
    return fail(
      `${host} resolves only to addresses the egress proxy refuses (${reasons.join('; ')})`,
      opens.length > 0
        ? `if ${host} is your site's registry, set BERTH_EGRESS_ALLOW=${opens
            .map((v) => (v.address.includes(':') ? `${v.address}/128` : `${v.address}/32`))
            .join(',')} on the server (a range refused by default)`
        : `point the image's configuration at a registry on a public address`,
    );
  }
  const problem = await tcpReach(allowed.address, registry.port, options.connectTimeoutMs ?? 3000);
  if (problem !== undefined)
    return fail(
      `the egress proxy would allow ${host} (${decision.rule}), but ${allowed.address} port ${registry.port} cannot be reached from this machine: ${problem}`,
      `check that the registry is up and that this machine's network or firewall lets it reach ${allowed.address} port ${registry.port}`,
    );
  return {
    name,
    ok: true,
    detail: `allowed by the egress proxy (${decision.rule}) and reached at ${allowed.address} port ${registry.port}`,
  };
}

export async function registryChecks(options: RegistryCheckOptions): Promise<DoctorCheck[]> {
  const guard = new AddressGuard({ allow: options.egressAllow.map((range) => ({ range })) });
  const checks: DoctorCheck[] = [];
  for (const image of options.images) {
    let config: ImagePackageConfiguration;
    try {
      config = await imageConfiguration(options.runtime, image);
    } catch (error) {
      checks.push({
        name: `registries of ${image}`,
        ok: false,
        detail: `its package configuration could not be read (${error instanceof Error ? error.message : String(error)})`,
        fix: 'check that the image exists and starts (docker image inspect)',
      });
      continue;
    }
    const registries = registriesOf(config);
    // The preset as the proxy expands it for this image, with the extra ports of the server.
    const imagePolicy = EgressPolicy.forEnvironment(
      PRESET_POLICY,
      config,
      options.egressPorts.length > 0
        ? { tunnel: options.egressPorts, http: options.egressPorts }
        : undefined,
    );
    if (registries.length === 0) {
      checks.push({
        name: `registries of ${image}`,
        ok: true,
        detail: 'its configuration names no package registry',
      });
      continue;
    }
    for (const registry of registries)
      checks.push(await checkRegistry(registry, image, imagePolicy, guard, options));
  }
  return checks;
}

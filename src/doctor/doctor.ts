import { request } from 'node:http';
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import type { BerthConfig } from '../config/config.js';
import { tunnelRelayStatus } from '../egress/tunnel-relay.js';

/**
 * `berth doctor`: checks what Berth depends on and says exactly what is missing and the command
 * that fixes it. It talks to the engine with plain HTTP over its socket, so it works even when
 * the engine is too old or too new for the runtime adapter.
 */

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

const SETUP = 'sudo bash scripts/setup.sh';

function engineGet(
  socketPath: string,
  path: string,
  timeoutMs = 3000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The engine's data directory against the free-disk floor attempts and cache builds need. */
async function freeDiskCheck(config: BerthConfig): Promise<DoctorCheck> {
  let rootDir = '/var/lib/docker';
  try {
    const { body } = await engineGet(config.dockerSocket, '/info');
    rootDir = (JSON.parse(body) as { DockerRootDir?: string }).DockerRootDir ?? rootDir;
    const stats = await statfs(rootDir);
    const freeMb = Math.floor((stats.bavail * stats.bsize) / 1024 / 1024);
    const enough = freeMb >= config.minFreeDiskMb;
    return {
      name: 'free disk',
      ok: enough,
      detail: `${freeMb} MB free in ${rootDir} (where the Docker engine keeps its data); the floor is ${config.minFreeDiskMb} MB (BERTH_MIN_FREE_DISK_MB)${enough ? '' : ': attempts and cache builds are refused'}`,
      ...(enough
        ? {}
        : {
            fix: `free space in ${rootDir} (berth env cache reset ENV, docker image prune), or lower BERTH_MIN_FREE_DISK_MB`,
          }),
    };
  } catch (error) {
    return {
      name: 'free disk',
      ok: true,
      detail: `not known: ${rootDir} cannot be read here (${error instanceof Error ? error.message : String(error)}; an engine on another machine)`,
    };
  }
}

export const REQUIRED_IMAGES = ['berth/minimal:latest', 'berth/universal:latest'] as const;

export interface DoctorOptions {
  /**
   * Whether to check the egress proxy's reach to the images' package registries (network use:
   * DNS and one TCP connection per registry). Default true.
   */
  registries?: boolean;
  /** The images whose registries are checked; default: the base images present and this instance's cache images. */
  images?: readonly string[];
}

/** The base images present and the cache images of this instance (their registries are checked). */
async function builtImages(config: BerthConfig): Promise<string[]> {
  const present: string[] = [];
  for (const image of REQUIRED_IMAGES) {
    const { status } = await engineGet(config.dockerSocket, `/images/${image}/json`);
    if (status === 200) present.push(image);
  }
  const filters = encodeURIComponent(
    JSON.stringify({ label: ['berth.kind=cache', `berth.instance=${config.instance}`] }),
  );
  const { status, body } = await engineGet(config.dockerSocket, `/images/json?filters=${filters}`);
  if (status === 200) {
    for (const image of JSON.parse(body) as { Id: string; RepoTags?: string[] | null }[])
      present.push(image.RepoTags?.find((t) => t !== '<none>:<none>') ?? image.Id);
  }
  return present;
}

export async function runDoctor(
  config: BerthConfig,
  options: DoctorOptions = {},
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];

  let engineUp = false;
  try {
    const { status, body } = await engineGet(config.dockerSocket, '/version');
    const version = JSON.parse(body) as { Version?: string; ApiVersion?: string };
    engineUp = status === 200;
    const api = Number(version.ApiVersion ?? '0');
    checks.push({
      name: 'docker engine',
      ok: engineUp && api >= 1.41,
      detail: `engine ${version.Version ?? '?'} (API ${version.ApiVersion ?? '?'}) at ${config.dockerSocket}`,
      ...(api < 1.41
        ? {
            fix: 'install a Docker engine with API 1.41 or newer (Debian 12: apt-get install docker.io)',
          }
        : {}),
    });
  } catch (error) {
    const installed = hasCommand('dockerd');
    checks.push({
      name: 'docker engine',
      ok: false,
      detail: `no engine answers at ${config.dockerSocket} (${(error as Error).message})`,
      fix: installed
        ? 'start it: sudo dockerd >/var/log/dockerd.log 2>&1 & (or: sudo systemctl start docker)'
        : `install and start it: ${SETUP}`,
    });
  }

  if (engineUp) checks.push(await freeDiskCheck(config));

  for (const image of REQUIRED_IMAGES) {
    if (!engineUp) {
      checks.push({
        name: `image ${image}`,
        ok: false,
        detail: 'cannot check without the engine',
        fix: `start the engine first (${SETUP})`,
      });
      continue;
    }
    const { status } = await engineGet(config.dockerSocket, `/images/${image}/json`);
    const short = image.split('/')[1]?.split(':')[0] ?? image;
    checks.push({
      name: `image ${image}`,
      ok: status === 200,
      detail: status === 200 ? 'present' : 'missing',
      ...(status === 200 ? {} : { fix: `npx berth image build ${short}` }),
    });
  }

  checks.push({
    name: 'debootstrap',
    ok: hasCommand('debootstrap'),
    detail: hasCommand('debootstrap')
      ? 'present (base images are built from a Debian root file system)'
      : 'missing: base images cannot be built',
    ...(hasCommand('debootstrap') ? {} : { fix: 'sudo apt-get install debootstrap' }),
  });

  const relay = tunnelRelayStatus();
  checks.push({
    name: 'tunnel relay',
    ok: relay.available,
    detail: relay.available
      ? 'native relay and TLS legs (tunnelled bytes, and the TLS of intercepted tunnels, move on their own threads, off the event loop)'
      : `${relay.reason}: tunnels are relayed with Node streams and intercepted TLS runs on Node's sockets, at several times the CPU per byte`,
    ...(relay.available ? {} : { fix: 'npm run build:native (needs make, g++ and python3)' }),
  });

  // The corporate proxy the egress proxy goes out through, if any (issue 19 item 7).
  const { upstreamProxyDoctorCheck } = await import('../egress/upstream-proxy-doctor-check.js');
  checks.push(await upstreamProxyDoctorCheck(config));

  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    accessSync(config.dataDir, constants.W_OK);
    checks.push({ name: 'data directory', ok: true, detail: `${config.dataDir} is writable` });
  } catch (error) {
    checks.push({
      name: 'data directory',
      ok: false,
      detail: `${config.dataDir} is not writable (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      fix: 'choose another with --data-dir DIR or BERTH_DATA_DIR=DIR',
    });
  }

  if (engineUp && options.registries !== false) {
    const { registryChecks } = await import('./registry-checks.js');
    const { DockerRuntime } = await import('../adapters/runtime/docker/docker-runtime.js');
    checks.push(
      ...(await registryChecks({
        runtime: new DockerRuntime({ socketPath: config.dockerSocket, instance: config.instance }),
        images: options.images ?? (await builtImages(config)),
        egressHosts: config.egressHosts,
        egressAllow: config.egressAllow,
        egressPorts: config.egressPorts,
      })),
    );
  }

  // Slack, when configured (src/integrations/slack/): its mode and auth.test with the bot token.
  const { slackDoctorCheck } = await import('../integrations/slack/slack-doctor-check.js');
  const slack = await slackDoctorCheck(config);
  if (slack) checks.push(slack);

  if (config.secretKey === undefined) {
    try {
      const mode = statSync(config.secretKeyFile).mode & 0o777;
      checks.push({
        name: 'secret key',
        ok: (mode & 0o077) === 0,
        detail: `${config.secretKeyFile} (mode ${mode.toString(8)})`,
        ...((mode & 0o077) === 0 ? {} : { fix: `chmod 600 ${config.secretKeyFile}` }),
      });
    } catch {
      checks.push({
        name: 'secret key',
        ok: true,
        detail: `${config.secretKeyFile} will be created on first start`,
      });
    }
  }
  return checks;
}

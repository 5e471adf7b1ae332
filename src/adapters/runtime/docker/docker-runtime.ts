/**
 * DockerRuntime: the SandboxRuntime port over the Docker Engine API (dockerode, API 1.41).
 *
 * Threat model. The code inside a sandbox is untrusted: it may be an agent following a hostile
 * prompt or a repository's hostile setup script. Trusted: the orchestrator process, the Docker
 * engine, the images Berth built. This adapter guarantees that every sandbox it creates
 *  - is not privileged, keeps only the capabilities in KEPT_CAPABILITIES (see docs/runtime.md),
 *    runs with no-new-privileges, a process-count limit, memory (no swap) and CPU limits;
 *  - has no bind mounts or volumes at all, so neither the Docker socket nor any host path is
 *    reachable from inside;
 *  - has IPv6 off and no network at all unless the caller names one;
 *  - carries `berth.managed=true` and this orchestrator's instance label, like every network
 *    and image it makes, so a reaper can find what is left behind.
 * Output from a sandbox is bounded before it is kept (head + tail), so a sandbox cannot exhaust
 * the orchestrator's memory by printing. Command trees are killed as a whole on timeout/abort.
 * The exec channel (exec-agent-channel.ts, exec-agent-source.ts): the agent makes itself not
 * dumpable before anything else, so commands (root included, no CAP_SYS_PTRACE) cannot reach its
 * stdin/stdout, memory or environment through /proc; only one agent is started per sandbox start
 * (before any command of the sandbox runs), later commands take the Engine-API path; every frame
 * is checked (size cap, known types, started commands, exit codes 0-255) and a violation drops
 * the channel and refuses every later command in the sandbox with the reason; time limits are
 * the orchestrator's timers, never the agent's answer. Files read out of a sandbox must be regular
 * files within a byte cap checked before their content is read (`readFile`, tar-files.ts).
 * Not guaranteed here: disk quotas (overlay2 on extfs cannot limit them; the orchestrator's disk
 * watchdog polls `sandboxDiskUsage` instead) and egress policy (the networks' job).
 */
import path from 'node:path';
import { readFile, statfs } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { BerthError } from '../../../errors/berth-error.js';
import type {
  CreateSandboxOptions,
  ExecOptions,
  ExecResult,
  ImageInfo,
  NetworkInfo,
  RuntimeInfo,
  RuntimeStorage,
  SandboxDiskUsage,
  SandboxStats,
  SandboxInfo,
  SandboxRuntime,
} from '../../../ports/sandbox-runtime.js';
import { BERTH_LABELS, managedLabels } from '../../../runtime/labels.js';
import { ExecAgentChannel } from './exec-agent-channel.js';
import { engineExec } from './engine-exec.js';
import { readSingleFile, singleFileTar } from './tar-files.js';
import { DEFAULT_READ_FILE_MAX_BYTES } from '../../../ports/sandbox-runtime.js';
import { imageMissing } from '../../../runtime/image-missing.js';

/**
 * Capabilities a sandbox keeps (everything else is dropped). Each is needed by package installs
 * or by the runtime itself; the reasons are written down in docs/runtime.md.
 */
export const KEPT_CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'SETUID',
  'SETGID',
  'KILL',
  'NET_BIND_SERVICE',
] as const;

export interface RuntimeLogger {
  debug(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface DockerRuntimeOptions {
  /** Default: /var/run/docker.sock. */
  socketPath?: string;
  /** The value of the `berth.instance` label on everything this runtime makes. */
  instance: string;
  logger?: RuntimeLogger;
  /**
   * How commands reach a sandbox. `agent` (default): one long-lived exec running a small agent,
   * falling back to `engine` where the agent cannot run. `engine`: one Engine-API exec per command.
   */
  execChannel?: 'agent' | 'engine';
}

const SILENT: RuntimeLogger = { debug: () => undefined, warn: () => undefined };

/** Images Berth builds itself, with the command that builds each. */
export class DockerRuntime implements SandboxRuntime {
  private readonly docker: Docker;
  private readonly instance: string;
  private readonly logger: RuntimeLogger;
  private readonly execChannel: 'agent' | 'engine';
  /** Per sandbox: the agent channel, or null where the agent cannot run. */
  private readonly channels = new Map<string, Promise<ExecAgentChannel | null>>();
  /**
   * Sandboxes in which an exec agent was started since the sandbox started. Only the first agent
   * is started before any sandbox command could lie in wait for it (a later one could be reached
   * in the moment before it makes itself undumpable), so once it is gone, commands take the
   * Engine-API path until the sandbox is started again.
   */
  private readonly agentStarted = new Set<string>();
  /** Sandboxes whose exec channel broke its protocol: every later command is refused. */
  private readonly poisoned = new Map<string, BerthError>();
  /** The engine's data directory (DockerRootDir), read once. */
  private rootDir: Promise<string> | undefined;

  constructor(options: DockerRuntimeOptions) {
    this.docker = new Docker({
      socketPath: options.socketPath ?? '/var/run/docker.sock',
      version: 'v1.41',
    });
    this.instance = options.instance;
    this.logger = options.logger ?? SILENT;
    this.execChannel = options.execChannel ?? 'agent';
  }

  /** Labels for a new resource: the caller's, then the ones Berth always sets. */
  private labelsFor(labels: Record<string, string>): Record<string, string> {
    return { ...labels, ...managedLabels(this.instance) };
  }

  private labelFilter(labels: Record<string, string>): string {
    const all = this.labelsFor(labels);
    return JSON.stringify({ label: Object.entries(all).map(([k, v]) => `${k}=${v}`) });
  }

  async info(): Promise<RuntimeInfo> {
    const version = await this.call('reach the Docker engine', () => this.docker.version());
    return { name: 'docker', version: version.Version, apiVersion: version.ApiVersion };
  }

  async create(options: CreateSandboxOptions): Promise<SandboxInfo> {
    if (!(await this.imageExists(options.image))) throw imageMissing(options.image);
    const { resources } = options;
    const memoryBytes = Math.floor(resources.memoryMb * 1024 * 1024);
    const labels = this.labelsFor({ [BERTH_LABELS.kind]: 'sandbox', ...options.labels });
    const prefix = options.namePrefix === undefined ? '' : `${options.namePrefix}-`;
    const name = `berth-${prefix}${randomBytes(6).toString('hex')}`;
    const container = await this.call('create a sandbox', () =>
      this.docker.createContainer({
        name,
        Image: options.image,
        Labels: labels,
        Env: Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`),
        ...(options.hostname !== undefined ? { Hostname: options.hostname } : {}),
        ...(options.workdir !== undefined ? { WorkingDir: options.workdir } : {}),
        // The sandbox idles; commands arrive by exec. docker-init (Init) is PID 1 and reaps orphans.
        Entrypoint: ['sleep', 'infinity'],
        Cmd: [],
        AttachStdin: false,
        AttachStdout: false,
        AttachStderr: false,
        Tty: false,
        HostConfig: {
          Init: true,
          Privileged: false,
          CapDrop: ['ALL'],
          CapAdd: [...KEPT_CAPABILITIES],
          SecurityOpt: ['no-new-privileges'],
          PidsLimit: resources.pids,
          Memory: memoryBytes,
          MemorySwap: memoryBytes,
          NanoCpus: Math.round(resources.cpus * 1e9),
          NetworkMode: options.network ?? 'none',
          Sysctls: {
            'net.ipv6.conf.all.disable_ipv6': '1',
            'net.ipv6.conf.default.disable_ipv6': '1',
          },
          Binds: [],
          Mounts: [],
          IpcMode: 'private',
          ...(options.extraHosts !== undefined ? { ExtraHosts: options.extraHosts } : {}),
        },
        ...(options.signal !== undefined ? { abortSignal: options.signal } : {}),
      }),
    );
    this.logger.debug({ sandboxId: container.id, image: options.image }, 'sandbox created');
    return { id: container.id, name, image: options.image, labels, state: 'created' };
  }

  async start(id: string, signal?: AbortSignal): Promise<void> {
    await this.call(
      `start sandbox ${id}`,
      async () => {
        try {
          await this.docker
            .getContainer(id)
            .start(signal !== undefined ? { abortSignal: signal } : {});
          // A fresh start: no process of the sandbox is left, a new agent may start first.
          this.agentStarted.delete(id);
        } catch (error) {
          if (statusOf(error) === 304) return; // already running
          throw error;
        }
      },
      id,
    );
  }

  async exec(id: string, options: ExecOptions): Promise<ExecResult> {
    const result = await this.execOnce(id, options);
    if (result.exitCode === 0 || result.timedOut) return result;
    return (await this.newOomKills(id)) ? { ...result, outOfMemory: true } : result;
  }

  /** OOM kills of each sandbox's cgroup seen so far (a new sandbox has had none). */
  private readonly oomKillsSeen = new Map<string, number>();

  /**
   * Whether the kernel killed a process of the sandbox for its memory limit since the last look:
   * the `oom_kill` count of its memory cgroup, read on the host (cgroup v1 or v2, cgroupfs or
   * systemd driver). Docker's own `OOMKilled` is only set when the container's first process
   * dies, never for a command run in it. False where the cgroup files are not on this machine.
   */
  private async newOomKills(id: string): Promise<boolean> {
    if (!/^[0-9a-f]{64}$/.test(id)) return false;
    const candidates = [
      `/sys/fs/cgroup/memory/docker/${id}/memory.oom_control`,
      `/sys/fs/cgroup/memory/system.slice/docker-${id}.scope/memory.oom_control`,
      `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.events`,
      `/sys/fs/cgroup/docker/${id}/memory.events`,
    ];
    for (const path of candidates) {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch {
        continue;
      }
      const count = Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? NaN);
      if (!Number.isFinite(count)) return false;
      const seen = this.oomKillsSeen.get(id) ?? 0;
      this.oomKillsSeen.set(id, count);
      return count > seen;
    }
    return false;
  }

  private async execOnce(id: string, options: ExecOptions): Promise<ExecResult> {
    const container = this.docker.getContainer(id);
    const poisoned = this.poisoned.get(id);
    if (poisoned !== undefined) throw poisoned;
    if (this.execChannel === 'agent') {
      const channel = await this.channelFor(id);
      if (channel !== null) return channel.run(options);
    }
    try {
      return await engineExec(container, options, (waitMs) => this.goneError(id, waitMs));
    } catch (error) {
      throw await this.execError(id, error);
    }
  }

  private async execError(id: string, error: unknown): Promise<unknown> {
    if (error instanceof BerthError) return error;
    return (await this.goneError(id)) ?? this.translate(error, `exec in sandbox ${id}`, id);
  }

  private channelFor(id: string): Promise<ExecAgentChannel | null> {
    const existing = this.channels.get(id);
    if (existing !== undefined) {
      return existing.then((channel) => {
        if (channel === null || !channel.closed) return channel;
        this.channels.delete(id);
        return this.channelFor(id);
      });
    }
    if (this.agentStarted.has(id)) return Promise.resolve(null);
    this.agentStarted.add(id);
    const opening = this.openChannel(id);
    this.channels.set(id, opening);
    opening.catch(() => this.channels.delete(id));
    return opening;
  }

  private async openChannel(id: string): Promise<ExecAgentChannel | null> {
    const container = this.docker.getContainer(id);
    const inspected = await this.call(`inspect sandbox ${id}`, () => container.inspect(), id);
    if (!inspected.State.Running)
      throw new BerthError('sandbox_gone', `sandbox ${id} is not running`, { id });
    let channel: ExecAgentChannel | null;
    try {
      channel = await ExecAgentChannel.open(
        container,
        inspected.Config.User ?? '',
        async () => {
          this.channels.delete(id);
          return (
            (await this.goneError(id, 3000)) ??
            new BerthError(
              'runtime_unavailable',
              `the exec channel into sandbox ${id} closed unexpectedly (its agent was killed, stopped or did not answer)`,
              { id },
            )
          );
        },
        (error) => {
          this.poisoned.set(id, error);
          this.channels.delete(id);
          this.logger.warn({ sandboxId: id, reason: error.message }, 'exec channel dropped');
        },
      );
    } catch (error) {
      throw await this.execError(id, error);
    }
    if (channel === null) {
      this.logger.warn(
        { sandboxId: id },
        'exec agent cannot run in this sandbox; using one Engine-API exec per command',
      );
    }
    return channel;
  }

  /**
   * The sandbox_gone error if the sandbox is no longer running, else undefined. The engine may
   * report a container as running for a moment after its processes died (a kill or removal in
   * progress), so a caller that saw its stream cut can ask to wait up to `waitMs` for the verdict.
   */
  private async goneError(id: string, waitMs = 0): Promise<BerthError | undefined> {
    const deadline = Date.now() + waitMs;
    try {
      let info = await this.docker.getContainer(id).inspect();
      while (info.State.Running && !info.State.Restarting && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        info = await this.docker.getContainer(id).inspect();
      }
      if (info.State.Running) return undefined;
      const why = info.State.OOMKilled
        ? ' (killed: out of memory)'
        : ` (exit code ${info.State.ExitCode})`;
      return new BerthError('sandbox_gone', `sandbox ${id} stopped while the command ran${why}`, {
        id,
      });
    } catch (error) {
      if (statusOf(error) === 404) {
        return new BerthError('sandbox_gone', `sandbox ${id} was removed while the command ran`, {
          id,
        });
      }
      return this.translate(error, `inspect sandbox ${id}`, id);
    }
  }

  async readFile(
    id: string,
    filePath: string,
    options: { maxBytes?: number } = {},
  ): Promise<Buffer> {
    const archive = await this.getArchive(id, filePath);
    return readSingleFile(archive, filePath, options.maxBytes ?? DEFAULT_READ_FILE_MAX_BYTES);
  }

  async writeFile(
    id: string,
    filePath: string,
    data: Buffer | string,
    mode = 0o644,
  ): Promise<void> {
    if (!path.posix.isAbsolute(filePath)) {
      throw new BerthError('invalid_input', `a sandbox file path must be absolute: ${filePath}`);
    }
    const tar = await singleFileTar(
      filePath.replace(/^\/+/, ''),
      typeof data === 'string' ? Buffer.from(data) : data,
      mode,
    );
    await this.putArchive(id, '/', tar);
  }

  async putArchive(id: string, dir: string, tar: Readable | Buffer): Promise<void> {
    await this.call(
      `copy files into sandbox ${id}`,
      () => this.docker.getContainer(id).putArchive(tar, { path: dir }),
      id,
    );
  }

  async getArchive(id: string, filePath: string): Promise<Readable> {
    return this.call(
      `copy ${filePath} out of sandbox ${id}`,
      async () => (await this.docker.getContainer(id).getArchive({ path: filePath })) as Readable,
      id,
      filePath,
    );
  }

  async commit(
    id: string,
    options: { repository: string; tag: string; labels: Record<string, string> },
  ): Promise<ImageInfo> {
    const labels = this.labelsFor({ [BERTH_LABELS.kind]: 'snapshot', ...options.labels });
    const result = await this.call(
      `commit sandbox ${id}`,
      () =>
        this.docker.getContainer(id).commit({
          _query: { container: id, repo: options.repository, tag: options.tag, pause: true },
          _body: { Labels: labels },
        }) as Promise<{ Id: string }>,
      id,
    );
    return this.inspectImage(result.Id);
  }

  async stop(id: string, timeoutMs = 10_000): Promise<void> {
    this.closeChannel(id);
    await this.call(
      `stop sandbox ${id}`,
      async () => {
        try {
          await this.docker.getContainer(id).stop({ t: Math.ceil(timeoutMs / 1000) });
        } catch (error) {
          if (statusOf(error) === 304) return; // already stopped
          throw error;
        }
      },
      id,
    );
  }

  async remove(id: string): Promise<void> {
    this.closeChannel(id);
    this.agentStarted.delete(id);
    this.oomKillsSeen.delete(id);
    this.poisoned.delete(id);
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (error) {
      if (statusOf(error) === 404) return;
      throw this.translate(error, `remove sandbox ${id}`, id);
    }
  }

  private closeChannel(id: string): void {
    const channel = this.channels.get(id);
    this.channels.delete(id);
    void channel?.then((c) => c?.close()).catch(() => undefined);
  }

  async list(labels: Record<string, string>): Promise<SandboxInfo[]> {
    const containers = await this.call('list sandboxes', () =>
      this.docker.listContainers({ all: true, filters: this.labelFilter(labels) }),
    );
    return containers.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      image: c.Image,
      labels: c.Labels,
      state: sandboxState(c.State),
    }));
  }

  async createNetwork(options: {
    name: string;
    internal: boolean;
    labels: Record<string, string>;
    bridgeName?: string;
  }): Promise<NetworkInfo> {
    const labels = this.labelsFor({ [BERTH_LABELS.kind]: 'network', ...options.labels });
    const network = await this.call(`create network ${options.name}`, () =>
      this.docker.createNetwork({
        Name: options.name,
        CheckDuplicate: true,
        Driver: 'bridge',
        Internal: options.internal,
        EnableIPv6: false,
        Labels: labels,
        ...(options.bridgeName !== undefined
          ? { Options: { 'com.docker.network.bridge.name': options.bridgeName } }
          : {}),
      }),
    );
    return this.inspectNetwork(network.id);
  }

  private async inspectNetwork(idOrName: string): Promise<NetworkInfo> {
    const info = await this.call<Docker.NetworkInspectInfo>(`inspect network ${idOrName}`, () =>
      this.docker.getNetwork(idOrName).inspect(),
    );
    return networkInfo(info);
  }

  async connect(id: string, network: string, options?: { aliases?: string[] }): Promise<void> {
    const container = this.docker.getContainer(id);
    const inspected = await this.call(`inspect sandbox ${id}`, () => container.inspect(), id);
    // A container on the `none` network cannot join another one; leave `none` first.
    if (Object.hasOwn(inspected.NetworkSettings.Networks, 'none')) {
      await this.call(`disconnect sandbox ${id} from none`, () =>
        this.docker.getNetwork('none').disconnect({ Container: id, Force: true }),
      );
    }
    await this.call(`connect sandbox ${id} to network ${network}`, () =>
      this.docker.getNetwork(network).connect({
        Container: id,
        ...(options?.aliases !== undefined ? { EndpointConfig: { Aliases: options.aliases } } : {}),
      }),
    );
  }

  async disconnect(id: string, network: string): Promise<void> {
    await this.call(`disconnect sandbox ${id} from network ${network}`, () =>
      this.docker.getNetwork(network).disconnect({ Container: id, Force: true }),
    );
  }

  async removeNetwork(name: string): Promise<void> {
    try {
      await this.docker.getNetwork(name).remove();
    } catch (error) {
      if (statusOf(error) === 404) return;
      throw this.translate(error, `remove network ${name}`);
    }
  }

  async listNetworks(labels: Record<string, string>): Promise<NetworkInfo[]> {
    const networks = await this.call('list networks', () =>
      this.docker.listNetworks({ filters: this.labelFilter(labels) }),
    );
    return networks.map(networkInfo);
  }

  async imageExists(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw this.translate(error, `inspect image ${ref}`);
    }
  }

  async inspectImage(ref: string): Promise<ImageInfo> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      return {
        id: info.Id,
        tags: info.RepoTags ?? [],
        labels: info.Config.Labels ?? {},
        sizeBytes: info.Size,
        createdAt: info.Created,
      };
    } catch (error) {
      if (statusOf(error) === 404) throw imageMissing(ref);
      throw this.translate(error, `inspect image ${ref}`);
    }
  }

  async listImages(labels: Record<string, string>): Promise<ImageInfo[]> {
    const images = await this.call('list images', () =>
      this.docker.listImages({ filters: this.labelFilter(labels) }),
    );
    return images.map((i) => ({
      id: i.Id,
      tags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'),
      labels: i.Labels ?? {},
      sizeBytes: i.Size,
      createdAt: new Date(i.Created * 1000).toISOString(),
      ...(i.ParentId ? { parentId: i.ParentId } : {}),
    }));
  }

  async removeImage(ref: string): Promise<void> {
    try {
      await this.docker.getImage(ref).remove({ force: false, noprune: false });
    } catch (error) {
      if (statusOf(error) === 404) return;
      // An image id with several tags is removed with all its tags; an image in use stays refused.
      if (statusOf(error) === 409 && /multiple repositories/.test(engineMessage(error))) {
        await this.call(`remove image ${ref}`, () =>
          this.docker.getImage(ref).remove({ force: true }),
        );
        return;
      }
      throw this.translate(error, `remove image ${ref}`);
    }
  }

  /**
   * One `GET /containers/json?size=1` for every running sandbox of this instance: SizeRw is what
   * each wrote beyond its image. The engine walks each writable layer to answer, so the cost grows
   * with the number of files sandboxes wrote (see docs/benchmarks.md).
   */
  async sandboxDiskUsage(): Promise<SandboxDiskUsage[]> {
    const containers = await this.call("measure the sandboxes' disk use", () =>
      this.docker.listContainers({ all: false, size: true, filters: this.labelFilter({}) }),
    );
    return containers.map((c) => ({
      id: c.Id,
      labels: c.Labels,
      writableBytes: (c as { SizeRw?: number }).SizeRw ?? 0,
    }));
  }

  /**
   * One `GET /containers/{id}/stats?stream=false&one-shot=true` (no second sample to wait for):
   * the CPU time the container's cgroup counted (`cpu_stats.cpu_usage.total_usage`, ns) and, on
   * cgroup v1, its memory high-water mark (`memory_stats.max_usage`; cgroup v2 has none here).
   * Undefined when the container is gone or not running (the engine answers with zeros then).
   */
  async sandboxStats(id: string): Promise<SandboxStats | undefined> {
    const stats = (await this.call(
      `read the statistics of sandbox ${id}`,
      () =>
        this.docker
          .getContainer(id)
          .stats({ stream: false, 'one-shot': true } as { stream: false }) as Promise<unknown>,
      id,
    )) as {
      cpu_stats?: { cpu_usage?: { total_usage?: number } };
      memory_stats?: { max_usage?: number };
    };
    const cpuNs = stats.cpu_stats?.cpu_usage?.total_usage;
    if (typeof cpuNs !== 'number' || cpuNs <= 0) return undefined;
    const peak = stats.memory_stats?.max_usage;
    return {
      cpuSeconds: cpuNs / 1e9,
      ...(typeof peak === 'number' && peak > 0 ? { peakMemoryBytes: peak } : {}),
    };
  }

  /**
   * The engine's data directory and the space free there. The directory is statfs'ed on this
   * machine (the engine is reached through a local socket); where it is not a local path (an
   * engine inside a VM), only the directory is known.
   */
  async storage(): Promise<RuntimeStorage> {
    this.rootDir ??= this.call("read the Docker engine's data directory", async () => {
      const info = (await this.docker.info()) as { DockerRootDir?: string };
      return info.DockerRootDir ?? '/var/lib/docker';
    });
    let rootDir: string;
    try {
      rootDir = await this.rootDir;
    } catch (error) {
      this.rootDir = undefined;
      throw error;
    }
    try {
      const stats = await statfs(rootDir);
      return {
        rootDir,
        freeBytes: stats.bavail * stats.bsize,
        totalBytes: stats.blocks * stats.bsize,
      };
    } catch {
      return { rootDir };
    }
  }

  /** Runs an Engine API call, translating its failures into BerthErrors. */
  private async call<T>(
    what: string,
    run: () => Promise<T>,
    sandboxId?: string,
    filePath?: string,
  ): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.translate(error, what, sandboxId, filePath);
    }
  }

  private translate(
    error: unknown,
    what: string,
    sandboxId?: string,
    filePath?: string,
  ): BerthError {
    if (error instanceof BerthError) return error;
    const status = statusOf(error);
    const message = engineMessage(error);
    const details: Record<string, unknown> = {
      ...(sandboxId !== undefined ? { id: sandboxId } : {}),
    };
    if (status === 404) {
      if (filePath !== undefined && /no such file|could not find the file/i.test(message)) {
        return new BerthError(
          'not_found',
          `${filePath} does not exist in sandbox ${sandboxId ?? ''}`.trim(),
          details,
          { cause: error },
        );
      }
      if (sandboxId !== undefined && /no such container/i.test(message)) {
        return new BerthError('sandbox_gone', `sandbox ${sandboxId} does not exist`, details, {
          cause: error,
        });
      }
      return new BerthError('not_found', `could not ${what}: ${message}`, details, {
        cause: error,
      });
    }
    if (/no space left on device/i.test(message)) {
      return new BerthError(
        'disk_full',
        `could not ${what}: the Docker engine's disk is full (no space left on device)`,
        { ...details, engineMessage: message },
        { cause: error },
      );
    }
    if (status === 409)
      return new BerthError('conflict', `could not ${what}: ${message}`, details, { cause: error });
    if (status === undefined && isConnectionError(error)) {
      return new BerthError(
        'runtime_unavailable',
        `could not ${what}: the Docker engine is not reachable (${message})`,
        details,
        { cause: error },
      );
    }
    if (error instanceof Error && error.name === 'AbortError') {
      return new BerthError('cancelled', `cancelled: ${what}`, details, { cause: error });
    }
    return new BerthError('internal', `could not ${what}: ${message}`, details, { cause: error });
  }
}

function statusOf(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'statusCode' in error) {
    const status = error.statusCode;
    return typeof status === 'number' ? status : undefined;
  }
  return undefined;
}

function engineMessage(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'json' in error) {
    const json = error.json;
    if (typeof json === 'object' && json !== null && 'message' in json) return String(json.message);
  }
  return error instanceof Error ? error.message : String(error);
}

function isConnectionError(error: unknown): boolean {
  const code =
    typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  return code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'ECONNRESET' || code === 'EPIPE';
}

function sandboxState(state: string): SandboxInfo['state'] {
  if (state === 'created' || state === 'running' || state === 'exited' || state === 'dead')
    return state;
  return 'unknown';
}

function networkInfo(info: Docker.NetworkInspectInfo): NetworkInfo {
  const config = info.IPAM?.Config?.[0];
  return {
    id: info.Id,
    name: info.Name,
    labels: info.Labels ?? {},
    internal: info.Internal,
    ...(config?.Gateway !== undefined && config.Gateway !== '' ? { gateway: config.Gateway } : {}),
    ...(config?.Subnet !== undefined && config.Subnet !== '' ? { subnet: config.Subnet } : {}),
  };
}

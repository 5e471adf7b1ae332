import type { Readable } from 'node:stream';

/**
 * The sandbox runtime port: everything the lifecycle needs from a container engine. Adapters:
 * `DockerRuntime` (src/adapters/runtime/docker). A Kubernetes adapter would implement the same.
 *
 * Ids are the runtime's own ids (a container id, an image id, a network name). Every resource an
 * adapter creates carries the labels it is given plus `berth.managed=true` and the instance label.
 */

/** The default cap of `SandboxRuntime.readFile`. */
export const DEFAULT_READ_FILE_MAX_BYTES = 8 * 1024 * 1024;

export interface SandboxResources {
  cpus: number;
  memoryMb: number;
  pids: number;
  /** Not every engine can limit disk; adapters say so in `RuntimeInfo.capabilities`. */
  diskMb?: number;
}

export interface CreateSandboxOptions {
  image: string;
  labels: Record<string, string>;
  resources: SandboxResources;
  /** Variables in the container's own configuration. Never secrets. */
  env?: Record<string, string>;
  /** Network to start on; default: none at all. */
  network?: string;
  hostname?: string;
  workdir?: string;
  /** Extra /etc/hosts entries, "name:address". */
  extraHosts?: string[];
  /**
   * The sandbox's name is `berth-<namePrefix>-<random>` (default `berth-<random>`). A name, unlike
   * a label, is not copied into an image committed from the sandbox.
   */
  namePrefix?: string;
  signal?: AbortSignal;
}

export interface SandboxInfo {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: 'created' | 'running' | 'exited' | 'dead' | 'unknown';
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

export interface ExecOptions {
  /** argv to run directly; exactly one of argv and script. */
  argv?: string[];
  /** A bash script, run as `bash -c` (login shell when `login` is set). */
  script?: string;
  login?: boolean;
  env?: Record<string, string>;
  workdir?: string;
  user?: string;
  stdin?: Buffer | string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called with output in the order the process wrote it. */
  onOutput?: (chunk: OutputChunk) => void;
  /** Bound on the output kept in the result (head and tail, a marker between). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number;
  /** stdout and stderr interleaved in order, bounded. */
  output: string;
  stdout: string;
  stderr: string;
  /** Bytes left out of `output` between its head and tail. */
  omittedBytes: number;
  timedOut: boolean;
  durationMs: number;
  /**
   * The kernel's OOM killer killed a process of the sandbox (its memory limit) while this
   * command ran; set only where the runtime can tell.
   */
  outOfMemory?: boolean;
}

export interface ImageInfo {
  id: string;
  tags: string[];
  labels: Record<string, string>;
  sizeBytes: number;
  createdAt: string;
  /** The image it was committed on, where the runtime records one (`listImages`). */
  parentId?: string;
}

export interface NetworkInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  internal: boolean;
  /** The bridge's gateway address on the host, where one exists. */
  gateway?: string;
  subnet?: string;
}

/** How much a running sandbox has written beyond its image. */
export interface SandboxDiskUsage {
  id: string;
  labels: Record<string, string>;
  /** Size of the sandbox's writable layer (files it added or changed), in bytes. */
  writableBytes: number;
}

/** What a sandbox used so far, as the engine counts it (the usage of an attempt, issue 17). */
export interface SandboxStats {
  /** CPU time of every process in the sandbox since it started. */
  cpuSeconds: number;
  /** The highest memory use since it started; absent where the engine does not report it (cgroup v2). */
  peakMemoryBytes?: number;
}

/** Where the engine keeps images and sandboxes, and the space left there when it can be read. */
export interface RuntimeStorage {
  rootDir: string;
  /** Undefined when the directory is not on this machine (a remote engine). */
  freeBytes?: number;
  totalBytes?: number;
}

export interface RuntimeInfo {
  name: string;
  version: string;
  apiVersion: string;
}

export interface SandboxRuntime {
  info(): Promise<RuntimeInfo>;

  create(options: CreateSandboxOptions): Promise<SandboxInfo>;
  start(id: string, signal?: AbortSignal): Promise<void>;
  exec(id: string, options: ExecOptions): Promise<ExecResult>;
  /**
   * A regular file's bytes. Refused without reading the content: not a regular file (a symlink,
   * a device, a FIFO, a directory: `invalid_input`), or larger than `maxBytes` (default
   * DEFAULT_READ_FILE_MAX_BYTES: `payload_too_large`); absent: `not_found`.
   */
  readFile(id: string, path: string, options?: { maxBytes?: number }): Promise<Buffer>;
  writeFile(id: string, path: string, data: Buffer | string, mode?: number): Promise<void>;
  /** Extracts a tar stream into `dir` inside the sandbox. */
  putArchive(id: string, dir: string, tar: Readable | Buffer): Promise<void>;
  /** A tar stream of `path` inside the sandbox. */
  getArchive(id: string, path: string): Promise<Readable>;
  commit(
    id: string,
    options: { repository: string; tag: string; labels: Record<string, string> },
  ): Promise<ImageInfo>;
  stop(id: string, timeoutMs?: number): Promise<void>;
  remove(id: string): Promise<void>;
  list(labels: Record<string, string>): Promise<SandboxInfo[]>;

  /** `bridgeName`: the host interface name of the network (≤ 15 characters), where the runtime has one. */
  createNetwork(options: {
    name: string;
    internal: boolean;
    labels: Record<string, string>;
    bridgeName?: string;
  }): Promise<NetworkInfo>;
  connect(id: string, network: string, options?: { aliases?: string[] }): Promise<void>;
  disconnect(id: string, network: string): Promise<void>;
  removeNetwork(name: string): Promise<void>;
  listNetworks(labels: Record<string, string>): Promise<NetworkInfo[]>;

  imageExists(ref: string): Promise<boolean>;
  inspectImage(ref: string): Promise<ImageInfo>;
  listImages(labels: Record<string, string>): Promise<ImageInfo[]>;
  removeImage(ref: string): Promise<void>;

  /**
   * The writable-layer size of every running sandbox of this instance, in one call (the disk
   * watchdog polls it). Absent where the runtime cannot tell.
   */
  sandboxDiskUsage?(): Promise<SandboxDiskUsage[]>;
  /** What a running sandbox used so far (read just before it is removed). Absent where unknown. */
  sandboxStats?(id: string): Promise<SandboxStats | undefined>;
  /** Where the engine keeps its data and the free space there. Absent where unknown. */
  storage?(): Promise<RuntimeStorage>;
}

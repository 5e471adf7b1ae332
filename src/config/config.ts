import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { BerthError } from '../errors/berth-error.js';
import { formatPath } from '../domain/environment/environment-file.js';
import { GITHUB_REPOSITORY_PATTERN } from '../git/github-repository-patterns.js';
import { configDirOf } from './process-env.js';
import {
  upstreamProxyFromEnvironment,
  type UpstreamProxySettings,
} from '../egress/upstream-proxy.js';

/**
 * Berth's configuration: parsed once by a composition root (server/main.ts, cli/main.ts) from
 * flags, then BERTH_* variables, then defaults. Nothing else reads the process environment.
 */

const configSchema = z.strictObject({
  dataDir: z.string().min(1),
  configDir: z.string().min(1),
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  /** The admin token's file and the secret key live in the data directory unless given. */
  secretKeyFile: z.string().min(1),
  /** A base64 AES-256 key given directly (instead of the key file). */
  secretKey: z.string().optional(),
  allowLocalRepositories: z.boolean(),
  /** A PostgreSQL connection string; without it the store is the SQLite file in the data directory. */
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  dockerSocket: z.string().min(1),
  /** A short name for this orchestrator, written on every Docker resource it makes. */
  instance: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/),
  /** PEM files that sandboxes and the egress proxy trust besides the public roots. */
  extraCaFiles: z.array(z.string()),
  /**
   * Names the egress proxy resolves itself before DNS (`BERTH_EGRESS_HOSTS=name=addr,...`): a
   * split-horizon name or a test server. The address guard still vets the answer.
   */
  egressHosts: z.record(
    z.string().min(1),
    z.union([z.ipv4(), z.ipv6()], { error: 'must be an IP address' }),
  ),
  /** Address ranges the egress proxy may dial for any allowed name (`BERTH_EGRESS_ALLOW=10.1.0.0/16,...`). */
  egressAllow: z.array(
    z.union([z.cidrv4(), z.cidrv6()], { error: 'must be a CIDR range such as 10.0.0.0/8' }),
  ),
  /**
   * Address ranges the setup network reaches besides the public internet
   * (`BERTH_SETUP_ALLOW=10.1.0.5/32,...`: a site's mirror or proxy); not opened by `egressAllow`.
   */
  setupAllow: z.array(
    z.union([z.cidrv4(), z.cidrv6()], { error: 'must be a CIDR range such as 10.1.0.5/32' }),
  ),
  /** Ports the egress proxy allows besides 443 and 80 (`BERTH_EGRESS_PORTS=8080,8443`). */
  egressPorts: z.array(z.number().int().min(1).max(65535)),
  /**
   * The corporate proxy the egress proxy goes out through (`BERTH_UPSTREAM_PROXY`, else
   * HTTPS_PROXY/HTTP_PROXY with NO_PROXY): parsed by upstream-proxy.ts, kept as parsed (its
   * credentials are not enumerable, so they never show in a dump of the configuration).
   */
  upstreamProxy: z
    .custom<UpstreamProxySettings>((value) => typeof value === 'object' && value !== null)
    .optional(),
  /**
   * Why the proxy variables cannot be used (an https:// or socks5:// URL, …), never their value:
   * `berth serve` and `berth run` refuse to start with it, `berth doctor` shows it, and commands
   * that do not go out (login, client commands) are not stopped by it.
   */
  upstreamProxyProblem: z.string().optional(),
  cacheTtlMs: z.number().int().positive(),
  /** No attempt starts and no cache entry is built with less free disk where Docker keeps its data (0: off). */
  minFreeDiskMb: z.number().int().min(0),
  snapshotTtlMs: z.number().int().positive(),
  concurrency: z.number().int().min(1).max(64),
  maxAttempts: z.number().int().min(1).max(64),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  /**
   * The address people reach the server at (`BERTH_PUBLIC_URL`), when a proxy stands in front
   * of it: with `https:` the web UI's session cookie is marked `Secure` (web-sessions.ts).
   */
  publicUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** `BERTH_METRICS_TOKEN`: a bearer token for `GET /metrics` only (besides admin tokens). */
  metricsToken: z.string().min(16).optional(),
  /** A token for GitHub's REST API and HTTPS pushes to GitHub remotes (`berth task pr`). */
  githubToken: z.string().min(1).optional(),
  /**
   * `OWNER/NAME` patterns (`*` for a whole segment: `acme/*`) of the repositories `githubToken`
   * may push to (`BERTH_GITHUB_REPOSITORIES`); empty: every repository.
   */
  githubRepositories: z.array(
    z
      .string()
      .regex(GITHUB_REPOSITORY_PATTERN, 'must be OWNER/NAME, where either may be * (acme/*)'),
  ),
  /** GitHub's API base: the public one, or `https://HOST/api/v3` for GitHub Enterprise. */
  githubApiUrl: z.url({ protocol: /^https?$/ }),
  /**
   * Repository locations that stand for a GitHub repository although their URL does not say so
   * (a mirror, a local bare repository in tests): location → `OWNER/REPO`.
   */
  githubRemotes: z.record(
    z.string().min(1),
    z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be OWNER/REPO'),
  ),
  /**
   * The GitHub integration (docs/github.md): the webhook's secret (`BERTH_GITHUB_WEBHOOK_SECRET`;
   * without it the webhook answers 404), the bot name a comment starts with
   * (`BERTH_GITHUB_MENTION`, without the `@`), and the GitHub App Berth acts as
   * (`BERTH_GITHUB_APP_ID` + `BERTH_GITHUB_APP_PRIVATE_KEY_FILE`) instead of `githubToken`.
   */
  githubWebhookSecret: z.string().min(1).optional(),
  githubMention: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?$/, 'must be a GitHub login (without @)'),
  githubAppId: z
    .string()
    .regex(/^[0-9]+$/, "must be the App's numeric id")
    .optional(),
  githubAppPrivateKeyFile: z.string().min(1).optional(),
  /** Author and committer of the commits Berth pushes for pull requests. */
  gitAuthor: z.strictObject({ name: z.string().min(1), email: z.string().min(3) }),
  /** Limits of the model agent per attempt (unset: the agent's defaults). */
  agentLimits: z.strictObject({
    maxTurns: z.number().int().min(1).optional(),
    wallTimeMs: z.number().int().min(1000).optional(),
    maxTokens: z.number().int().min(1000).optional(),
  }),
  /**
   * Slack (docs/slack.md): Socket Mode with the app-level token (`BERTH_SLACK_APP_TOKEN`), the
   * Events API at POST /v1/integrations/slack/events checked with the signing secret
   * (`BERTH_SLACK_SIGNING_SECRET`); the bot token (`BERTH_SLACK_BOT_TOKEN`) for the Web API at
   * `apiUrl` (`BERTH_SLACK_API_URL`, a gateway or a test server; default Slack's own).
   */
  slack: z.strictObject({
    appToken: z
      .string()
      .regex(/^xapp-/, 'an app-level token starts with xapp-')
      .optional(),
    signingSecret: z.string().min(1).optional(),
    botToken: z
      .string()
      .regex(/^xoxb-/, 'a bot token starts with xoxb-')
      .optional(),
    apiUrl: z.url({ protocol: /^https?$/ }),
  }),
  model: z.strictObject({
    baseUrl: z.string().optional(),
    apiKey: z.string().optional(),
    model: z.string().optional(),
  }),
});

export type BerthConfig = z.output<typeof configSchema>;

/** Flags a command line may give; each overrides the matching variable. */
export interface ConfigFlags {
  dataDir?: string | undefined;
  host?: string | undefined;
  port?: number | string | undefined;
  allowLocalRepositories?: boolean | undefined;
  modelBaseUrl?: string | undefined;
  model?: string | undefined;
  logLevel?: string | undefined;
}

type Env = Record<string, string | undefined>;

const HOST_EXTRA_CA_DIR = '/usr/local/share/ca-certificates';

/** The host's own additions to its trust store (what a TLS-intercepting proxy's CA looks like). */
function hostExtraCaFiles(): string[] {
  try {
    return readdirSync(HOST_EXTRA_CA_DIR, { recursive: true })
      .map(String)
      .filter((name) => name.endsWith('.crt'))
      .sort()
      .map((name) => join(HOST_EXTRA_CA_DIR, name));
  } catch {
    return [];
  }
}

function bool(value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  return ['1', 'true', 'yes', 'on'].includes(value.toLowerCase());
}

function int(value: string | number | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  return typeof value === 'number' ? value : Number(value);
}

export function defaultDataDir(env: Env): string {
  const home = env.HOME ?? homedir();
  return join(env.XDG_DATA_HOME || join(home, '.local', 'share'), 'berth');
}

export { childEnvironment, clientEnv, defaultConfigDir, readVariable } from './process-env.js';

/** `LOCATION=OWNER/REPO` pairs separated by commas (a location holding `=` or `,` cannot be given). */
function parseGithubRemotes(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (value ?? '').split(',')) {
    if (pair.trim() === '') continue;
    const at = pair.lastIndexOf('=');
    if (at <= 0)
      throw new BerthError(
        'invalid_input',
        `configuration: BERTH_GITHUB_REMOTES: "${pair}" is not LOCATION=OWNER/REPO`,
      );
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

/** A comma-separated list, blanks dropped. */
function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** The upstream proxy from the environment, or why it cannot be used (the variable's name, never its value). */
function upstreamProxySetting(env: Env): {
  upstreamProxy?: UpstreamProxySettings;
  upstreamProxyProblem?: string;
} {
  try {
    const upstreamProxy = upstreamProxyFromEnvironment(env);
    return upstreamProxy !== undefined ? { upstreamProxy } : {};
  } catch (error) {
    return { upstreamProxyProblem: `configuration: ${(error as Error).message}` };
  }
}

/** `NAME=ADDRESS` pairs separated by commas; names lower-cased, one trailing dot dropped. */
function parseEgressHosts(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of list(value)) {
    const at = pair.indexOf('=');
    if (at <= 0)
      throw new BerthError(
        'invalid_input',
        `configuration: BERTH_EGRESS_HOSTS: "${pair}" is not NAME=ADDRESS`,
      );
    out[pair.slice(0, at).trim().toLowerCase().replace(/\.$/, '')] = pair.slice(at + 1).trim();
  }
  return out;
}

export function loadConfig(flags: ConfigFlags = {}, env: Env = process.env): BerthConfig {
  const dataDir = resolve(flags.dataDir ?? (env.BERTH_DATA_DIR || defaultDataDir(env)));
  const raw = {
    dataDir,
    configDir: configDirOf(env),
    host: flags.host ?? (env.BERTH_HOST || '127.0.0.1'),
    port: int(flags.port) ?? int(env.BERTH_PORT) ?? 8420,
    secretKeyFile: resolve(env.BERTH_SECRET_KEY_FILE || join(dataDir, 'secret.key')),
    ...(env.BERTH_SECRET_KEY ? { secretKey: env.BERTH_SECRET_KEY } : {}),
    allowLocalRepositories:
      flags.allowLocalRepositories ?? bool(env.BERTH_ALLOW_LOCAL_REPOS) ?? false,
    ...(env.BERTH_DATABASE_URL ? { databaseUrl: env.BERTH_DATABASE_URL } : {}),
    dockerSocket: env.BERTH_DOCKER_SOCKET || '/var/run/docker.sock',
    // One store, one instance: resources are reaped by what this data directory's store knows.
    instance:
      env.BERTH_INSTANCE || `d${createHash('sha256').update(dataDir).digest('hex').slice(0, 12)}`,
    extraCaFiles:
      env.BERTH_EXTRA_CA_FILES !== undefined
        ? env.BERTH_EXTRA_CA_FILES.split(':').filter((f) => f !== '')
        : hostExtraCaFiles(),
    egressHosts: parseEgressHosts(env.BERTH_EGRESS_HOSTS),
    egressAllow: list(env.BERTH_EGRESS_ALLOW),
    egressPorts: list(env.BERTH_EGRESS_PORTS).map(Number),
    setupAllow: list(env.BERTH_SETUP_ALLOW),
    ...upstreamProxySetting(env),
    cacheTtlMs: int(env.BERTH_CACHE_TTL_MS) ?? 12 * 3600_000,
    minFreeDiskMb: int(env.BERTH_MIN_FREE_DISK_MB) ?? 2048,
    snapshotTtlMs: int(env.BERTH_SNAPSHOT_TTL_MS) ?? 7 * 24 * 3600_000,
    // At least the attempts cap: attempts mostly wait on the model, so best-of-8 runs all at once.
    concurrency: int(env.BERTH_CONCURRENCY) ?? 8,
    maxAttempts: int(env.BERTH_MAX_ATTEMPTS) ?? 8,
    logLevel: flags.logLevel ?? (env.BERTH_LOG_LEVEL || 'info'),
    ...(env.BERTH_PUBLIC_URL ? { publicUrl: env.BERTH_PUBLIC_URL } : {}),
    ...(env.BERTH_METRICS_TOKEN ? { metricsToken: env.BERTH_METRICS_TOKEN } : {}),
    ...(env.BERTH_GITHUB_TOKEN ? { githubToken: env.BERTH_GITHUB_TOKEN } : {}),
    githubApiUrl: (env.BERTH_GITHUB_API_URL || 'https://api.github.com').replace(/\/+$/, ''),
    githubRemotes: parseGithubRemotes(env.BERTH_GITHUB_REMOTES),
    githubRepositories: list(env.BERTH_GITHUB_REPOSITORIES),
    ...(env.BERTH_GITHUB_WEBHOOK_SECRET
      ? { githubWebhookSecret: env.BERTH_GITHUB_WEBHOOK_SECRET }
      : {}),
    githubMention: (env.BERTH_GITHUB_MENTION || 'berth').replace(/^@/, ''),
    ...(env.BERTH_GITHUB_APP_ID ? { githubAppId: env.BERTH_GITHUB_APP_ID } : {}),
    ...(env.BERTH_GITHUB_APP_PRIVATE_KEY_FILE
      ? { githubAppPrivateKeyFile: resolve(env.BERTH_GITHUB_APP_PRIVATE_KEY_FILE) }
      : {}),
    gitAuthor: {
      name: env.BERTH_GIT_AUTHOR_NAME || 'Berth',
      email: env.BERTH_GIT_AUTHOR_EMAIL || 'berth@localhost',
    },
    agentLimits: {
      ...(int(env.BERTH_AGENT_MAX_TURNS) !== undefined
        ? { maxTurns: int(env.BERTH_AGENT_MAX_TURNS) }
        : {}),
      ...(int(env.BERTH_AGENT_WALL_TIME_MS) !== undefined
        ? { wallTimeMs: int(env.BERTH_AGENT_WALL_TIME_MS) }
        : {}),
      ...(int(env.BERTH_AGENT_MAX_TOKENS) !== undefined
        ? { maxTokens: int(env.BERTH_AGENT_MAX_TOKENS) }
        : {}),
    },
    slack: {
      ...(env.BERTH_SLACK_APP_TOKEN ? { appToken: env.BERTH_SLACK_APP_TOKEN } : {}),
      ...(env.BERTH_SLACK_SIGNING_SECRET ? { signingSecret: env.BERTH_SLACK_SIGNING_SECRET } : {}),
      ...(env.BERTH_SLACK_BOT_TOKEN ? { botToken: env.BERTH_SLACK_BOT_TOKEN } : {}),
      // The Web API's methods are appended to it (`…/api/chat.postMessage`): one trailing slash.
      apiUrl: `${(env.BERTH_SLACK_API_URL || 'https://slack.com/api').replace(/\/+$/, '')}/`,
    },
    model: {
      ...((flags.modelBaseUrl ?? env.BERTH_MODEL_BASE_URL)
        ? { baseUrl: flags.modelBaseUrl ?? env.BERTH_MODEL_BASE_URL }
        : {}),
      ...(env.BERTH_MODEL_API_KEY ? { apiKey: env.BERTH_MODEL_API_KEY } : {}),
      ...((flags.model ?? env.BERTH_MODEL) ? { model: flags.model ?? env.BERTH_MODEL } : {}),
    },
  };
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new BerthError(
      'invalid_input',
      `configuration: ${issue ? `${formatPath(issue.path)}: ${issue.message}` : 'invalid'}`,
    );
  }
  return result.data;
}

/** Where the CLI finds its server: flags, then BERTH_URL/BERTH_TOKEN, then the login file. */

import { readRepositoryHeads } from '../git/remote-heads.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import type { BerthConfig } from '../config/config.js';
import { BerthError } from '../errors/berth-error.js';
import type { Logger } from '../util/logger.js';
import { BERTH_VERSION } from '../version.js';
import { SqliteStore } from '../adapters/store/sqlite/sqlite-store.js';
import { PostgresStore } from '../adapters/store/postgres/postgres-store.js';
import { SecretBox } from '../secrets/secret-box.js';
import { EnvironmentService } from '../services/environment-service.js';
import { TokenService } from '../services/token-service.js';
import { createApp } from './app.js';
import { WebUiFiles } from './web-ui-files.js';
import { WebSessions } from './web-sessions.js';
import { DockerRuntime } from '../adapters/runtime/docker/docker-runtime.js';
import { createOrchestrator } from '../lifecycle/orchestrator.js';
import { egressSettingsFromConfig } from '../egress/egress-settings-from-config.js';
import { TaskService } from '../services/task-service.js';
import { PullRequestService } from '../services/pull-request-service.js';
import { Reaper } from '../runtime/reaper.js';
import { DockerImageEngine } from '../adapters/runtime/docker/docker-image-engine.js';
import { LanguageLayer, languageImagePreparer } from '../images/language-versions.js';
import { resourceLiveness } from '../lifecycle/resource-liveness.js';
import { currentKeyInputs, specKeyInputs } from '../lifecycle/cache-key-now.js';
import { repositoryCredentials } from '../lifecycle/repository-credentials.js';
import { modelClientFromConfig } from '../adapters/model/model-client-from-config.js';
import { hostname } from 'node:os';
import { BerthMetrics } from '../metrics/berth-metrics.js';
import { UsageRecorder } from '../usage/usage-recorder.js';
import { UsageService } from '../usage/usage-service.js';
import { GitHubAuth, githubSettingsFromConfig } from '../integrations/github/github-auth.js';
import { GitHubWebhook } from '../integrations/github/github-webhook.js';
import { SlackIntegration } from '../integrations/slack/slack-integration.js';
import { slackSettingsFromConfig } from '../integrations/slack/slack-settings.js';

/**
 * The server's composition root: opens the store (SQLite in the data directory), loads the
 * secret key, builds the services and the HTTP app, and listens. On first start (no live admin
 * token) it makes the admin token and returns its value once, for `berth serve` to print; the
 * value is never logged or stored.
 */

export interface RunningServer {
  url: string;
  close(): Promise<void>;
  adminToken?: string;
  /** The web UI's address, when the UI is built (web/dist). */
  uiUrl?: string;
  /** Slack, when BERTH_SLACK_BOT_TOKEN and an app token or a signing secret are set. */
  slack?: SlackIntegration;
}

/** web/dist of this package: two folders up from src/server/ and from dist/server/ alike. */
export const WEB_UI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'dist');

function urlOf(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

async function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(
        new BerthError(
          'invalid_input',
          error.code === 'EADDRINUSE'
            ? `cannot listen on ${host}:${port}: the port is in use (choose another with --port or BERTH_PORT)`
            : `cannot listen on ${host}:${port}: ${error.message}`,
          {},
          { cause: error },
        ),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
  return server.address() as AddressInfo;
}

export async function startServer(config: BerthConfig, logger: Logger): Promise<RunningServer> {
  const { box, created } = SecretBox.load(config);
  if (created) logger.info({ file: config.secretKeyFile }, 'created the secret key file');
  const store =
    config.databaseUrl !== undefined
      ? PostgresStore.connect({ connectionString: config.databaseUrl })
      : SqliteStore.open(config.dataDir);
  try {
    await store.migrate();
    const tokens = new TokenService({ store });
    // Pinned language versions: checked when an environment is saved, installed on first use.
    const languages = new LanguageLayer({
      engine: new DockerImageEngine({ socketPath: config.dockerSocket }),
    });
    const environments = new EnvironmentService({
      store,
      secretBox: box,
      allowLocalRepositories: config.allowLocalRepositories,
      // The default branch: asked of the repository when an environment is written.
      readRepositoryHeads: (url, credentials, ssh) =>
        readRepositoryHeads(url, { allow: config.setupAllow, credentials, ssh }),
      knownHostsDir: join(config.dataDir, 'known_hosts'),
      // `env diff` fetches a remote repository's file where the checkout may connect.
      addressPolicy: { allow: config.setupAllow },
      checkAvailability: async (spec) => {
        if (Object.keys(spec.versions).length > 0)
          await languages.resolve(spec.image, spec.versions);
      },
    });
    const firstAdmin = await tokens.ensureAdminToken();
    if (firstAdmin)
      logger.info(
        { tokenId: firstAdmin.token.id, name: firstAdmin.token.name },
        'created the admin token',
      );

    const runtime = new DockerRuntime({
      socketPath: config.dockerSocket,
      instance: config.instance,
    });
    // Without a model, tasks can still run a command (`berth exec --command`).
    const model =
      config.model.baseUrl !== undefined ? modelClientFromConfig(config.model) : undefined;
    const egress = await egressSettingsFromConfig(config);
    if (egress.unreadable.length > 0)
      logger.warn(
        { files: egress.unreadable },
        'extra CA files that are not readable certificates are skipped',
      );
    if (config.githubToken !== undefined && config.githubRepositories.length === 0)
      logger.warn(
        'BERTH_GITHUB_TOKEN may push to every GitHub repository an environment names: list the ones it is for in BERTH_GITHUB_REPOSITORIES (acme/*)',
      );
    // One metrics registry for the process (GET /metrics), fed by the scheduler's attempts; each
    // finished attempt's usage is stored (GET /v1/usage).
    let runningAttempts = () => 0;
    const metrics = new BerthMetrics({
      node: hostname(),
      capacityAttempts: config.concurrency,
      runningAttempts: () => runningAttempts(),
      runningSandboxes: async () =>
        (await runtime.list({})).filter((sandbox) => sandbox.state === 'running').length,
    });
    const { scheduler, collector } = createOrchestrator({
      imageEngine: new DockerImageEngine({ socketPath: config.dockerSocket }),
      observers: [metrics, new UsageRecorder(store)],
      store,
      runtime,
      egress: egress.options,
      setupAllow: config.setupAllow,
      secretBox: box,
      model,
      agentLimits: config.agentLimits,
      prepareImage: languageImagePreparer(languages),
      openSecrets: async (environment) =>
        Object.fromEntries(await environments.openSecrets(environment.id)),
      cacheTtlMs: config.cacheTtlMs,
      minFreeDiskMb: config.minFreeDiskMb,
      snapshotTtlMs: config.snapshotTtlMs,
      allowLocalRepositories: config.allowLocalRepositories,
      knownHostsDir: join(config.dataDir, 'known_hosts'),
      concurrency: config.concurrency,
      maxAttempts: config.maxAttempts,
      warmPool: true,
      logger: logger.child({ part: 'scheduler' }),
    });
    runningAttempts = () => scheduler.runningCount;
    const tasks = new TaskService({
      store,
      runner: scheduler,
      resetCache: (environmentId) => collector.reset(environmentId),
      cacheSizes: (entries) => collector.sizesBeyondBase(entries),
      cacheKeyNow: async (environment, entries) => {
        const secrets = Object.fromEntries(await environments.openSecrets(environment.id));
        // A remote repository's file is fetched as the attempt fetches it (repository.config).
        const remote = {
          credentials: repositoryCredentials(environment.spec, secrets),
          addressPolicy: { allow: config.setupAllow },
          knownHostsFile: join(config.dataDir, 'known_hosts', environment.id),
        };
        return currentKeyInputs(
          runtime,
          environment,
          secrets,
          entries,
          undefined,
          await specKeyInputs(store, environment, remote),
        );
      },
      openSecrets: async (environment) =>
        Object.fromEntries(await environments.openSecrets(environment.id)),
      pullRequests: new PullRequestService({
        githubToken: config.githubToken,
        githubApiUrl: config.githubApiUrl,
        githubRemotes: config.githubRemotes,
        githubRepositories: config.githubRepositories,
        gitAuthor: config.gitAuthor,
        allowLocalRepositories: config.allowLocalRepositories,
        knownHostsDir: join(config.dataDir, 'known_hosts'),
        // An ssh push connects only where the checkout may (BERTH_SETUP_ALLOW).
        addressPolicy: { allow: config.setupAllow },
        // git's own message of a failed clone: the caller gets a fixed one (no port oracle).
        logger: logger.child({ part: 'pr' }),
      }),
      agentAvailable: model !== undefined,
      agentUnavailableReason:
        'no model is configured on the server (start it with BERTH_MODEL_BASE_URL, BERTH_MODEL_API_KEY and BERTH_MODEL), so a task needs --command',
    });
    // Sandboxes, networks and images that belong to nothing live (a crash) go, now and every 5 minutes.
    const reaper = new Reaper({
      runtime,
      isLive: resourceLiveness(store, { owner: scheduler.owner }),
      logger: logger.child({ part: 'reaper' }),
    });
    await scheduler.start();
    // The engine may be down: the API still serves, attempts fail with the engine's reason, and
    // the reaper tries again on its interval.
    await reaper.start().catch((error: unknown) => {
      logger.warn(
        { err: error },
        'the reaper could not reach the Docker engine; it tries again later',
      );
    });

    const webUi = WebUiFiles.load(WEB_UI_DIR);
    if (!webUi)
      logger.warn(
        { dir: WEB_UI_DIR },
        'the web UI is not built (npm run build:web); only the API is served',
      );
    // Slack (docs/slack.md) is made once the server's address is known (its links' default).
    let slack: SlackIntegration | undefined;
    // GitHub (docs/github.md): with BERTH_GITHUB_WEBHOOK_SECRET, comments start tasks.
    const github = githubSettingsFromConfig(config);
    const githubWebhook = github
      ? new GitHubWebhook({
          settings: github,
          auth: new GitHubAuth(github.apiUrl, github.identity),
          store,
          tasks,
          waitForTask: (taskId) => scheduler.waitForTask(taskId),
          logger: logger.child({ part: 'github' }),
        })
      : undefined;
    const app = createApp({
      environments,
      tokens,
      tasks,
      ...(githubWebhook
        ? { githubWebhook: (request: Request) => githubWebhook.receive(request) }
        : {}),
      ...(config.slack.signingSecret !== undefined && config.slack.botToken !== undefined
        ? {
            slackEvents: (request: Request) =>
              slack?.handleHttp?.(request) ?? Promise.resolve(new Response(null, { status: 503 })),
          }
        : {}),
      logger,
      version: BERTH_VERSION,
      ...(webUi ? { webUi } : {}),
      sessions: new WebSessions(store, { publicUrl: config.publicUrl }),
      operations: {
        metrics,
        usage: new UsageService({ store, environments }),
        metricsToken: config.metricsToken,
      },
      serverStatus: {
        dataDir: config.dataDir,
        minFreeDiskMb: config.minFreeDiskMb,
        storage: () => runtime.storage(),
      },
    });
    const server = createAdaptorServer({
      fetch: (request: Request) => app.fetch(request),
    }) as Server;
    const address = await listen(server, config.port, config.host);
    const url = urlOf(address);
    logger.info(
      {
        url,
        dataDir: config.dataDir,
        store: config.databaseUrl !== undefined ? 'postgresql' : 'sqlite',
      },
      'listening',
    );
    const slackSettings = slackSettingsFromConfig(config, url);
    if (slackSettings) {
      slack = new SlackIntegration(slackSettings, { store, tasks, logger });
      // Slack may be unreachable: the server serves anyway (Socket Mode keeps trying to connect).
      await slack.start();
    } else if (config.slack.botToken !== undefined || config.slack.appToken !== undefined)
      logger.warn(
        'Slack is off: it needs BERTH_SLACK_BOT_TOKEN and BERTH_SLACK_APP_TOKEN (Socket Mode) or BERTH_SLACK_SIGNING_SECRET (Events API)',
      );

    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        // Running attempts stop and clean up: those that had not reached the agent phase go back
        // to the queue for the next start, later ones fail with the phase they were in. Anything
        // left (a stop cut short) is recovered on the next start.
        await slack?.stop();
        await reaper.stop();
        await scheduler.stop({ interruptRunning: true });
        await store.close();
      })();
      return closing;
    };
    return {
      url,
      close,
      ...(firstAdmin ? { adminToken: firstAdmin.value } : {}),
      ...(webUi ? { uiUrl: `${url}/` } : {}),
      ...(slack ? { slack } : {}),
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}

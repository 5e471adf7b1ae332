import { readFileSync } from 'node:fs';
import { createAppAuth } from '@octokit/auth-app';
import type { Octokit } from '@octokit/rest';
import type { BerthConfig } from '../../config/config.js';
import { BerthError } from '../../errors/berth-error.js';
import { createOctokit, githubError } from '../../git/github-client.js';
import type { GitHubRepository } from '../../git/github-remote.js';
import type { GitCredentials } from '../../lifecycle/checkout.js';

/**
 * Who Berth is on GitHub, and the octokit and git credentials it acts with for one repository.
 *
 * Threat model: the App's private key and the installation tokens made with it stay in this
 * process (never in a sandbox, a log line, a message or a comment). An installation token is
 * asked for the one repository a comment came from (`repositoryNames`), so what is pushed with it
 * reaches that repository only; octokit's App strategy signs the JWT (RS256, 10 minutes) and
 * caches the installation tokens until shortly before they expire. With a token
 * (`BERTH_GITHUB_TOKEN`) instead, that token is used as it is, for the repositories
 * `BERTH_GITHUB_REPOSITORIES` lists.
 */

export type GitHubIdentity =
  { kind: 'token'; token: string } | { kind: 'app'; appId: string; privateKey: string };

export interface GitHubIntegrationSettings {
  webhookSecret: string;
  /** The bot's name without `@` (`BERTH_GITHUB_MENTION`). */
  mention: string;
  apiUrl: string;
  identity: GitHubIdentity;
  /** `OWNER/NAME` patterns the server's token may act on (`BERTH_GITHUB_REPOSITORIES`). */
  repositories: readonly string[];
  /** Where people reach Berth (`BERTH_PUBLIC_URL`): task links in replies. */
  publicUrl?: string | undefined;
  maxAttempts: number;
}

/**
 * The integration's settings from the server's configuration; undefined when the webhook is not
 * set up (no `BERTH_GITHUB_WEBHOOK_SECRET`). An App id without its key file, or a key file that
 * cannot be read, is refused at start-up with the variable to fix.
 */
export function githubSettingsFromConfig(
  config: BerthConfig,
): GitHubIntegrationSettings | undefined {
  const secret = config.githubWebhookSecret;
  if (secret === undefined) return undefined;
  let identity: GitHubIdentity;
  if (config.githubAppId !== undefined || config.githubAppPrivateKeyFile !== undefined) {
    if (config.githubAppId === undefined || config.githubAppPrivateKeyFile === undefined)
      throw new BerthError(
        'invalid_input',
        'configuration: a GitHub App needs both BERTH_GITHUB_APP_ID and BERTH_GITHUB_APP_PRIVATE_KEY_FILE',
      );
    let privateKey: string;
    try {
      privateKey = readFileSync(config.githubAppPrivateKeyFile, 'utf8');
    } catch (error) {
      throw new BerthError(
        'invalid_input',
        `configuration: BERTH_GITHUB_APP_PRIVATE_KEY_FILE: cannot read ${config.githubAppPrivateKeyFile}: ${(error as Error).message}`,
      );
    }
    if (!/-----BEGIN (?:RSA )?PRIVATE KEY-----/.test(privateKey))
      throw new BerthError(
        'invalid_input',
        `configuration: BERTH_GITHUB_APP_PRIVATE_KEY_FILE: ${config.githubAppPrivateKeyFile} is not a PEM private key (the .pem file GitHub made for the App)`,
      );
    identity = { kind: 'app', appId: config.githubAppId, privateKey };
  } else if (config.githubToken !== undefined) {
    identity = { kind: 'token', token: config.githubToken };
  } else {
    throw new BerthError(
      'invalid_input',
      'configuration: BERTH_GITHUB_WEBHOOK_SECRET is set but Berth has no way to talk to GitHub: set BERTH_GITHUB_TOKEN, or BERTH_GITHUB_APP_ID and BERTH_GITHUB_APP_PRIVATE_KEY_FILE',
    );
  }
  return {
    webhookSecret: secret,
    mention: config.githubMention,
    apiUrl: config.githubApiUrl,
    identity,
    repositories: config.githubRepositories,
    publicUrl: config.publicUrl,
    maxAttempts: config.maxAttempts,
  };
}

/** The octokit and git credentials for one repository, as the configured identity. */
export class GitHubAuth {
  constructor(
    private readonly apiUrl: string,
    private readonly identity: GitHubIdentity,
  ) {}

  get kind(): GitHubIdentity['kind'] {
    return this.identity.kind;
  }

  /**
   * An octokit acting on `repository`: the token's, or the App's installation there (the
   * installation id of the delivery when given, else asked of `GET /repos/{owner}/{repo}/installation`).
   */
  async octokitFor(repository: GitHubRepository, installationId?: number): Promise<Octokit> {
    const identity = this.identity;
    if (identity.kind === 'token')
      return createOctokit({ apiUrl: this.apiUrl, token: identity.token });
    const installation = installationId ?? (await this.installationOf(repository));
    return createOctokit({
      apiUrl: this.apiUrl,
      authStrategy: createAppAuth,
      auth: {
        appId: identity.appId,
        privateKey: identity.privateKey,
        installationId: installation,
        log: { warn: () => undefined },
      },
    });
  }

  /**
   * Credentials for git over HTTPS to `repository`: the token, or an installation token made for
   * that repository only (`x-access-token` as the user name, as GitHub documents for both).
   */
  async gitCredentials(
    repository: GitHubRepository,
    installationId?: number,
  ): Promise<GitCredentials> {
    const identity = this.identity;
    if (identity.kind === 'token') return { username: 'x-access-token', password: identity.token };
    const installation = installationId ?? (await this.installationOf(repository));
    const auth = createAppAuth({
      appId: identity.appId,
      privateKey: identity.privateKey,
      request: createOctokit({ apiUrl: this.apiUrl }).request,
      log: { warn: () => undefined },
    });
    try {
      const made = await auth({
        type: 'installation',
        installationId: installation,
        repositoryNames: [repository.repo],
      });
      return { username: 'x-access-token', password: made.token };
    } catch (error) {
      throw githubError(error, this.apiUrl);
    }
  }

  private async installationOf(repository: GitHubRepository): Promise<number> {
    const identity = this.identity;
    if (identity.kind !== 'app') throw new BerthError('internal', 'not a GitHub App');
    const app = createOctokit({
      apiUrl: this.apiUrl,
      authStrategy: createAppAuth,
      auth: { appId: identity.appId, privateKey: identity.privateKey },
    });
    try {
      const found = await app.rest.apps.getRepoInstallation({
        owner: repository.owner,
        repo: repository.repo,
      });
      return found.data.id;
    } catch (error) {
      throw githubError(error, this.apiUrl);
    }
  }
}

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../errors/berth-error.js';
import { newId } from '../domain/ids.js';
import { parseEnvironmentSpec } from '../domain/environment/environment-file.js';
import type { DefaultBranchOrigin } from '../domain/environment/environment.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import { classifyRepositoryUrl } from '../domain/environment/repository-url.js';
import {
  namesDefaultBranch,
  settleDefaultBranch,
  type RemoteHeads,
} from '../domain/environment/default-branch.js';
import { readRepositoryHeads } from '../git/remote-heads.js';
import type { GitCredentials } from '../lifecycle/checkout.js';
import { repositoryCredentials } from '../lifecycle/repository-credentials.js';
import type { SealedSecret, Store, StoredEnvironment } from '../ports/store.js';
import type { RemoteAddressPolicy } from '../git/remote-address.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { Caller } from './caller.js';
import { githubTriggerTaken } from '../domain/environment/github-trigger.js';
import { TemplateService } from './template-service.js';
import { checkRepositoryFile } from '../lifecycle/repository-config-now.js';

/**
 * Environments as the API and the CLI see them: validation, membership and secrets, without
 * HTTP. Membership: an admin token sees every environment; any other token sees an environment
 * only if it created it or is one of its members. Membership is bound to tokens, not names: the
 * names in `spec.members` are resolved to the live tokens that hold them when the environment is
 * written (a name no live token has is refused), so a token made later with a revoked token's
 * name inherits nothing. An environment a caller may not see is reported exactly like one that
 * does not exist; creating a name that exists is the same `conflict` whether the caller can see
 * it or not (names are global: that a name is taken is all it tells).
 *
 * Secrets are write-only: values come in, are sealed with the SecretBox and stored; only names
 * ever come out (`openSecrets` is for the lifecycle, never for a response).
 */

export const SECRET_VALUE_MAX_BYTES = 64 * 1024;
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface EnvironmentInput {
  spec: unknown;
  secrets?: Record<string, string> | undefined;
}

export interface EnvironmentUpdate extends EnvironmentInput {
  removeSecrets?: string[] | undefined;
}

export interface EnvironmentServiceOptions {
  store: Store;
  secretBox: SecretBox;
  allowLocalRepositories: boolean;
  /**
   * Checks what needs the outside world, such as whether pinned language versions can be had
   * (refusing with `invalid_environment` naming the language and version).
   */
  checkAvailability?: (spec: EnvironmentSpec) => Promise<void>;
  /**
   * Asks the repository for its HEAD and branches (undefined: it cannot be asked from here);
   * by default as remote-heads.ts does. `knownHostsFile`: an ssh repository's host keys trusted
   * on first use, the environment's own file (the one its checkout uses).
   */
  readRepositoryHeads?: (
    repository: string,
    credentials: GitCredentials | undefined,
    ssh: { knownHostsFile: string | undefined },
  ) => Promise<RemoteHeads | undefined>;
  /** Where each environment's ssh host keys trusted on first use are kept (a file per id). */
  knownHostsDir?: string | undefined;
  /**
   * Where the host may connect to read a remote repository's `repository.config` file for
   * `env diff` (BERTH_SETUP_ALLOW, as the checkout); default: public addresses only.
   */
  addressPolicy?: RemoteAddressPolicy | undefined;
  now?: () => string;
}

interface Issue {
  path: string;
  message: string;
}

function invalid(issues: Issue[]): BerthError {
  const first = issues[0];
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return new BerthError(
    'invalid_input',
    `${first ? `${first.path}: ${first.message}` : 'invalid input'}${more}`,
    {
      issues,
    },
  );
}

function notFound(name: string): BerthError {
  return new BerthError('not_found', `environment "${name}" not found`, { name });
}

function checkSecretValues(secrets: Record<string, string>): Issue[] {
  const issues: Issue[] = [];
  for (const [name, value] of Object.entries(secrets)) {
    const path = `secrets.${name}`;
    if (!SECRET_NAME.test(name)) {
      issues.push({
        path,
        message:
          'a secret name must be a shell variable name (letters, digits and "_", not starting with a digit)',
      });
    } else if (typeof value !== 'string') {
      issues.push({ path, message: 'a secret value must be a string' });
    } else if (value === '') {
      issues.push({ path, message: 'a secret value may not be empty' });
    } else if (Buffer.byteLength(value, 'utf8') > SECRET_VALUE_MAX_BYTES) {
      issues.push({
        path,
        message: `a secret value may be at most ${SECRET_VALUE_MAX_BYTES} bytes`,
      });
    }
  }
  return issues;
}

/** A value as JSON with its object keys sorted, to compare two parsed specs' parts. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/**
 * `triggers` route a GitHub repository's comments or a Slack channel's messages into an
 * environment, whoever wrote it: a non-admin token that could set them would squat that
 * repository or channel (the admin's environment refused as a second one; a GitHub reader's
 * comment run and pushed through the squatter's environment, its tasks readable by the squatter).
 * So only an admin token sets, changes or removes them; a non-admin's write that leaves them as
 * they are (none on create) goes through. Templates and repository files cannot hold triggers.
 */
function refuseTriggersUnlessAdmin(
  caller: Caller,
  before: EnvironmentSpec['triggers'],
  after: EnvironmentSpec['triggers'],
): void {
  if (caller.admin) return;
  for (const kind of ['github', 'slack'] as const) {
    if (canonical(before?.[kind] ?? null) === canonical(after?.[kind] ?? null)) continue;
    const field = `triggers.${kind}`;
    throw new BerthError(
      'forbidden',
      `only an admin token may set, change or remove ${field} (it decides which ${kind === 'github' ? 'GitHub repository' : 'Slack channels'} start tasks in this environment); ask an admin to write it`,
      { issues: [{ path: field, message: 'admin tokens only' }] },
    );
  }
}

function unique(names: Iterable<string>): string[] {
  return [...new Set(names)];
}

export class EnvironmentService {
  private readonly store: Store;
  private readonly secretBox: SecretBox;
  private readonly allowLocalRepositories: boolean;
  private readonly now: () => string;
  private readonly checkAvailability: ((spec: EnvironmentSpec) => Promise<void>) | undefined;
  private readonly readRepositoryHeads: (
    repository: string,
    credentials: GitCredentials | undefined,
    ssh: { knownHostsFile: string | undefined },
  ) => Promise<RemoteHeads | undefined>;
  private readonly knownHostsDir: string | undefined;
  /** Templates, and the merge of an environment that extends one (template-service.ts). */
  readonly templates: TemplateService;

  constructor(options: EnvironmentServiceOptions) {
    this.store = options.store;
    this.templates = new TemplateService({
      store: options.store,
      checkAvailability: options.checkAvailability,
      allowLocalRepositories: options.allowLocalRepositories,
      // `env diff` on a remote repository: fetched as the attempt fetches it.
      repositoryFileAccess: async (environment) => ({
        credentials: repositoryCredentials(
          environment.spec,
          Object.fromEntries(await this.openSecrets(environment.id)),
        ),
        addressPolicy: options.addressPolicy,
        knownHostsFile: this.knownHostsFile(environment.id),
      }),
      ...(options.now ? { now: options.now } : {}),
    });
    this.checkAvailability = options.checkAvailability;
    this.readRepositoryHeads =
      options.readRepositoryHeads ??
      ((url, credentials, ssh) => readRepositoryHeads(url, { credentials, ssh }));
    this.knownHostsDir = options.knownHostsDir;
    this.secretBox = options.secretBox;
    this.allowLocalRepositories = options.allowLocalRepositories;
    this.now = options.now ?? (() => new Date().toISOString());
  }

  static canSee(caller: Caller, environment: StoredEnvironment): boolean {
    return (
      caller.admin ||
      environment.createdByTokenId === caller.tokenId ||
      environment.members.some((member) => member.tokenId === caller.tokenId) ||
      (caller.environmentIds?.includes(environment.id) ?? false)
    );
  }

  /** Validates a spec (shorthands allowed) against the schema and this server's rules. */
  validate(specInput: unknown): EnvironmentSpec {
    const spec = parseEnvironmentSpec(specInput);
    this.checkServerRules(spec);
    return spec;
  }

  /** Validates a spec as written: with `extends`, merged over its templates first. */
  async check(specInput: unknown): Promise<EnvironmentSpec> {
    const spec = this.validate((await this.templates.resolveWritten(specInput)).merged);
    // `repository.config`: a local repository's file must be there and valid (a remote's: at the attempt).
    await checkRepositoryFile(spec, this.allowLocalRepositories);
    return spec;
  }

  async create(caller: Caller, input: EnvironmentInput): Promise<StoredEnvironment> {
    const given = input.secrets ?? {};
    const secretIssues = checkSecretValues(given);
    let spec = await this.check(input.spec);
    refuseTriggersUnlessAdmin(caller, undefined, spec.triggers);
    await this.checkAvailability?.(spec);
    await this.refuseSecondGitHubEnvironment(spec);
    if (secretIssues.length > 0) throw invalid(secretIssues);
    // The id first: an ssh repository asked now trusts its host key in this environment's file.
    const id = newId('environment');
    try {
      const settled = await this.settleDefaultBranch(input.spec, spec, given, {
        id,
        stored: false,
      });
      spec = this.declare(settled.spec, Object.keys(given));
      const memberTokenIds = await this.resolveMembers(spec);
      const created = await this.store.createEnvironment({
        id,
        spec,
        createdByTokenId: caller.tokenId,
        memberTokenIds,
        secrets: this.seal(id, given),
        now: this.now(),
        defaultBranchOrigin: settled.origin,
      });
      await this.templates.recordWritten(id, input.spec);
      return created;
    } catch (error) {
      // Not created: no host key is kept for an id that names nothing.
      const hosts = this.knownHostsFile(id);
      if (hosts !== undefined) await rm(hosts, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** One environment per GitHub repository (`triggers.github`): a second is refused, naming the first. */
  private async refuseSecondGitHubEnvironment(
    spec: EnvironmentSpec,
    selfId?: string,
  ): Promise<void> {
    const taken = githubTriggerTaken(spec, await this.store.listEnvironments(), selfId);
    if (taken === undefined) return;
    throw new BerthError(
      'conflict',
      `the environment "${taken.environment}" already serves the GitHub repository ${taken.repository} (triggers.github.repository); one environment per repository`,
      { repository: taken.repository, environment: taken.environment },
    );
  }

  async get(caller: Caller, name: string): Promise<StoredEnvironment> {
    const environment = await this.store.getEnvironmentByName(name);
    if (!environment || !EnvironmentService.canSee(caller, environment)) throw notFound(name);
    return environment;
  }

  async list(caller: Caller): Promise<StoredEnvironment[]> {
    const all = await this.store.listEnvironments();
    return all.filter((environment) => EnvironmentService.canSee(caller, environment));
  }

  async update(caller: Caller, name: string, input: EnvironmentUpdate): Promise<StoredEnvironment> {
    const current = await this.get(caller, name);
    const given = input.secrets ?? {};
    const remove = unique(input.removeSecrets ?? []);
    let spec = await this.check(input.spec);
    refuseTriggersUnlessAdmin(caller, current.spec.triggers, spec.triggers);
    await this.checkAvailability?.(spec);
    await this.refuseSecondGitHubEnvironment(spec, current.id);
    if (spec.name !== name) {
      throw new BerthError(
        'invalid_input',
        `an environment cannot be renamed (the spec says "${spec.name}", the environment is "${name}"); create "${spec.name}" and delete "${name}" instead`,
        { issues: [{ path: 'name', message: `must be "${name}"` }] },
      );
    }
    const issues = checkSecretValues(given);
    remove.forEach((secret, i) => {
      if (!current.secretNames.includes(secret)) {
        issues.push({ path: `removeSecrets[${i}]`, message: `no secret named "${secret}" is set` });
      } else if (Object.hasOwn(given, secret)) {
        issues.push({
          path: `removeSecrets[${i}]`,
          message: `"${secret}" is both set and removed`,
        });
      }
    });
    if (issues.length > 0) throw invalid(issues);
    const settled = await this.settleDefaultBranch(input.spec, spec, given, {
      id: current.id,
      stored: !remove.includes(spec.repository.credentials?.secret ?? ''),
    });
    spec = settled.spec;
    const memberTokenIds = await this.resolveMembers(spec);
    // Secrets already stored stay declared unless removed, so an update from a file that does
    // not list them never drops a value silently.
    const kept = current.secretNames.filter((secret) => !remove.includes(secret));
    spec = this.declare(spec, [...Object.keys(given), ...kept]);
    const updated = await this.store.updateEnvironment(current.id, {
      spec,
      setSecrets: this.seal(current.id, given),
      removeSecrets: remove,
      now: this.now(),
      expectedRevision: current.revision,
      memberTokenIds,
      defaultBranchOrigin: settled.origin,
    });
    await this.templates.recordWritten(current.id, input.spec);
    return updated;
  }

  async delete(caller: Caller, name: string): Promise<void> {
    const environment = await this.get(caller, name);
    if (!(await this.store.deleteEnvironment(environment.id))) throw notFound(name);
  }

  /** The secret values of an environment, for the setup and maintenance scripts only. */
  async openSecrets(environmentId: string): Promise<Map<string, string>> {
    const sealed = await this.store.getSecretCiphertexts(environmentId);
    return new Map(
      sealed.map((s) => [s.name, this.secretBox.open(environmentId, s.name, s.ciphertext)]),
    );
  }

  private checkServerRules(spec: EnvironmentSpec): void {
    const kind = classifyRepositoryUrl(spec.repository.url);
    if (kind.ok && kind.kind === 'local' && !this.allowLocalRepositories) {
      const message =
        'local-path repositories are not allowed on this server; start it with --allow-local-repos or BERTH_ALLOW_LOCAL_REPOS=1 to allow them';
      throw new BerthError('invalid_environment', `environment: repository.url: ${message}`, {
        issues: [{ path: 'repository.url', message }],
      });
    }
  }

  /**
   * `repository.defaultBranch`, settled with the repository where it can be asked: found (its
   * HEAD) when the environment as written does not name one, refused naming the branches there
   * are when the named one does not exist (default-branch.ts). Asked at every create and update.
   * With where the branch came from: `assumed` when not named and the repository gave none.
   */
  private async settleDefaultBranch(
    written: unknown,
    spec: EnvironmentSpec,
    given: Record<string, string>,
    environment: { id: string; stored: boolean },
  ): Promise<{ spec: EnvironmentSpec; origin: DefaultBranchOrigin }> {
    const namesBranch = namesDefaultBranch(written);
    const notAsked = namesBranch ? 'named' : 'assumed';
    // A repository behind credentials is asked with them, when their value is at hand (given
    // now, or stored); without it, it is not asked (its clone says what it finds).
    let credentials: GitCredentials | undefined;
    const secret = spec.repository.credentials?.secret;
    if (secret !== undefined) {
      const value =
        given[secret] ??
        (environment.stored ? (await this.openSecrets(environment.id)).get(secret) : undefined);
      if (value === undefined) return { spec, origin: notAsked };
      credentials = repositoryCredentials(spec, { [secret]: value });
    }
    const heads = await this.readRepositoryHeads(spec.repository.url, credentials, {
      knownHostsFile: this.knownHostsFile(environment.id),
    });
    const named = namesBranch ? spec.repository.defaultBranch : undefined;
    const decision = settleDefaultBranch(named, spec.repository.defaultBranch, heads);
    if (!decision.ok) {
      throw new BerthError(
        'invalid_environment',
        `environment: repository.defaultBranch: ${decision.message}`,
        { issues: [{ path: 'repository.defaultBranch', message: decision.message }] },
      );
    }
    const origin = decision.found ? 'found' : notAsked;
    if (decision.branch === spec.repository.defaultBranch) return { spec, origin };
    return {
      spec: { ...spec, repository: { ...spec.repository, defaultBranch: decision.branch } },
      origin,
    };
  }

  /** The environment's file of ssh host keys trusted on first use (as its checkout's). */
  private knownHostsFile(environmentId: string): string | undefined {
    return this.knownHostsDir === undefined ? undefined : join(this.knownHostsDir, environmentId);
  }

  /**
   * The ids of the live tokens `spec.members` names, now: membership is bound to them, not to the
   * names. A name no live token has is refused (a token made later under it would otherwise
   * have to inherit it, or the member list would show a name that grants nothing).
   */
  private async resolveMembers(spec: EnvironmentSpec): Promise<string[]> {
    const ids: string[] = [];
    const issues: Issue[] = [];
    for (const [i, name] of spec.members.entries()) {
      const token = await this.store.getActiveTokenByName(name);
      if (token) ids.push(token.id);
      else
        issues.push({
          path: `members[${i}]`,
          message: `no live token is named "${name}" (members are bound to tokens when the environment is written: create the token first)`,
        });
    }
    if (issues.length > 0) {
      const first = issues[0];
      const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
      throw new BerthError(
        'invalid_environment',
        `environment: ${first ? `${first.path}: ${first.message}` : 'members'}${more}`,
        { issues },
      );
    }
    return ids;
  }

  /** Adds secret names to the spec's declared secrets and checks the result again. */
  private declare(spec: EnvironmentSpec, names: string[]): EnvironmentSpec {
    const missing = unique(names).filter((name) => !spec.secrets.includes(name));
    if (missing.length === 0) return spec;
    return parseEnvironmentSpec({ ...spec, secrets: [...spec.secrets, ...missing] });
  }

  private seal(environmentId: string, secrets: Record<string, string>): SealedSecret[] {
    return Object.entries(secrets).map(([name, value]) => ({
      name,
      ciphertext: this.secretBox.seal(environmentId, name, value),
    }));
  }
}

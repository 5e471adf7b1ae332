import { BerthError } from '../errors/berth-error.js';
import { newId } from '../domain/ids.js';
import { parseEnvironmentSpec } from '../domain/environment/environment-file.js';
import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import {
  resolveExtends,
  templateChain,
  validateTemplate,
  type Template,
  type TemplateLookup,
} from '../domain/environment/environment-template.js';
import type { Store, StoredEnvironment } from '../ports/store.js';
import type { Caller } from './caller.js';
import { repositoryFileDiff } from '../lifecycle/repository-config-now.js';
import type { RemoteFetchAccess } from '../lifecycle/remote-branch-head.js';

/**
 * Templates as the API and the CLI see them (issue 16), and what environments that extend them
 * need: the merge of what an environment wrote over its chain of templates
 * (environment-template.ts), kept in the environment's stored spec, and merged again for every
 * environment built on a template when the template changes (so the store's spec is always
 * what runs). A change that would make one of them invalid is refused, naming it.
 *
 * Who may do what: any token reads templates and extends them; only admin tokens create, change
 * or delete one, since a template changes every environment built on it, whoever owns those.
 */

export interface TemplateServiceOptions {
  store: Store;
  /** As the environment service's (pinned language versions can be had). */
  checkAvailability?: ((spec: EnvironmentSpec) => Promise<void>) | undefined;
  /** Whether local repositories are allowed (a repository file is read from them). */
  allowLocalRepositories?: boolean;
  /** How `env diff` fetches a remote repository's file: the environment's credentials, where the host may connect. */
  repositoryFileAccess?: (environment: StoredEnvironment) => Promise<RemoteFetchAccess>;
  now?: () => string;
}

export interface TemplateUpdate {
  template: Template;
  /** The environments merged again, by name. */
  environments: string[];
}

function notFound(name: string): BerthError {
  return new BerthError('not_found', `template "${name}" not found`, { name });
}

function adminOnly(caller: Caller, what: string): void {
  if (!caller.admin)
    throw new BerthError(
      'forbidden',
      `only an admin token may ${what} a template (a template changes every environment built on it)`,
    );
}

export class TemplateService {
  private readonly store: Store;
  private readonly checkAvailability: ((spec: EnvironmentSpec) => Promise<void>) | undefined;
  private readonly now: () => string;
  private readonly allowLocalRepositories: boolean;
  private readonly repositoryFileAccess:
    ((environment: StoredEnvironment) => Promise<RemoteFetchAccess>) | undefined;

  constructor(options: TemplateServiceOptions) {
    this.store = options.store;
    this.allowLocalRepositories = options.allowLocalRepositories ?? false;
    this.repositoryFileAccess = options.repositoryFileAccess;
    this.checkAvailability = options.checkAvailability;
    this.now = options.now ?? (() => new Date().toISOString());
  }

  /** Templates by name, as stored. */
  readonly lookup: TemplateLookup = async (name) =>
    (await this.store.getTemplateByName(name))?.spec;

  async create(caller: Caller, value: unknown): Promise<Template> {
    adminOnly(caller, 'create');
    const spec = await validateTemplate(value, this.lookup);
    return this.store.createTemplate({
      id: newId('template'),
      spec,
      createdByTokenId: caller.tokenId,
      now: this.now(),
    });
  }

  async get(_caller: Caller, name: string): Promise<Template> {
    const template = await this.store.getTemplateByName(name);
    if (!template) throw notFound(name);
    return template;
  }

  list(_caller: Caller): Promise<Template[]> {
    return this.store.listTemplates();
  }

  /**
   * Replaces a template, and merges every environment built on it (directly or through other
   * templates) again; refused, changing nothing, when one of them would not be valid.
   */
  async update(caller: Caller, name: string, value: unknown): Promise<TemplateUpdate> {
    adminOnly(caller, 'change');
    const current = await this.get(caller, name);
    const spec = await validateTemplate(value, this.lookup);
    if (spec.name !== name)
      throw new BerthError(
        'invalid_input',
        `a template cannot be renamed (the spec says "${spec.name}", the template is "${name}")`,
        { issues: [{ path: 'name', message: `must be "${name}"` }] },
      );
    const lookup: TemplateLookup = (n) => (n === name ? Promise.resolve(spec) : this.lookup(n));
    const dependents = await this.dependentEnvironments(name);
    const merged: Array<{ environment: StoredEnvironment; spec: EnvironmentSpec }> = [];
    for (const environment of dependents) {
      const next = await this.mergeAgain(environment, lookup).catch((error: unknown) => {
        const reason = error instanceof BerthError ? error.message : String(error);
        throw new BerthError(
          'invalid_environment',
          `template ${name}: the change would make environment "${environment.spec.name}" invalid: ${reason}`,
          { environment: environment.spec.name },
        );
      });
      if (next !== undefined) merged.push({ environment, spec: next });
    }
    const template = await this.store.updateTemplate(name, {
      spec,
      now: this.now(),
      expectedRevision: current.revision,
    });
    const names: string[] = [];
    for (const { environment, spec: next } of merged) {
      await this.store.updateEnvironment(environment.id, {
        spec: next,
        setSecrets: [],
        removeSecrets: [],
        now: this.now(),
      });
      names.push(environment.spec.name);
    }
    return { template, environments: names };
  }

  /** Deletes a template no environment or template extends; else refused with their names. */
  async delete(caller: Caller, name: string): Promise<void> {
    adminOnly(caller, 'delete');
    await this.get(caller, name);
    const templates = await this.store.listTemplatesExtending(name);
    const environments: string[] = [];
    for (const id of await this.store.listEnvironmentsExtending([name])) {
      const environment = await this.store.getEnvironmentById(id);
      if (environment) environments.push(environment.spec.name);
    }
    environments.sort();
    if (templates.length > 0 || environments.length > 0) {
      const list = [
        ...(environments.length > 0 ? [`environments ${environments.join(', ')}`] : []),
        ...(templates.length > 0 ? [`templates ${templates.join(', ')}`] : []),
      ].join(' and ');
      throw new BerthError(
        'conflict',
        `template "${name}" is extended by ${list}; change them to extend another template (or none) first`,
        { name, environments, templates },
      );
    }
    if (!(await this.store.deleteTemplate(name))) throw notFound(name);
  }

  /** An environment as written with its templates' fields merged under it, and the chain. */
  resolveWritten(written: unknown): Promise<{ merged: unknown; chain: string[] }> {
    return resolveExtends(written, this.lookup);
  }

  /** Keeps what an environment wrote when it extends a template (else forgets it). */
  async recordWritten(environmentId: string, written: unknown): Promise<void> {
    const object =
      written !== null && typeof written === 'object' && !Array.isArray(written)
        ? (written as { extends?: unknown; repository?: unknown })
        : undefined;
    const name = object?.extends;
    // A repository file's fields go under what the environment wrote (repository-config.ts).
    const repository = object?.repository;
    const config = repository !== null && typeof repository === 'object' && 'config' in repository;
    await this.store.putWrittenSpec(
      environmentId,
      typeof name === 'string' || config
        ? { extends: typeof name === 'string' ? name : '', spec: written }
        : undefined,
    );
  }

  /** `berth env diff`: the stored environment against its repository file (on `branch`). */
  async repositoryFileDiff(
    environment: StoredEnvironment,
    branch: string | undefined,
  ): ReturnType<typeof repositoryFileDiff> {
    const written = (await this.store.getWrittenSpec(environment.id))?.spec;
    const remote = await this.repositoryFileAccess?.(environment);
    return repositoryFileDiff(
      environment.spec,
      written,
      branch,
      this.allowLocalRepositories,
      remote,
    );
  }

  /** The names of the templates an environment's spec extends, nearest first. */
  async chainOf(spec: Pick<EnvironmentSpec, 'extends'>): Promise<Template[]> {
    if (spec.extends === undefined) return [];
    const chain = await templateChain(spec.extends, this.lookup, 'environment');
    const out: Template[] = [];
    for (const t of chain) {
      const stored = await this.store.getTemplateByName(t.name);
      if (stored) out.push(stored);
    }
    return out;
  }

  /**
   * The environments built on `name`: those extending it or a template that extends it (at any
   * depth).
   */
  private async dependentEnvironments(name: string): Promise<StoredEnvironment[]> {
    const names = new Set([name]);
    const queue = [name];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      for (const child of await this.store.listTemplatesExtending(next)) {
        if (!names.has(child)) {
          names.add(child);
          queue.push(child);
        }
      }
    }
    const out: StoredEnvironment[] = [];
    for (const id of await this.store.listEnvironmentsExtending([...names])) {
      const environment = await this.store.getEnvironmentById(id);
      if (environment) out.push(environment);
    }
    return out;
  }

  /**
   * An environment's spec merged again from what it wrote over its templates as `lookup` gives
   * them. What the environment service settled when it was written stays: the repository (its
   * default branch may have been found), the declared secrets and the members.
   */
  private async mergeAgain(
    environment: StoredEnvironment,
    lookup: TemplateLookup,
  ): Promise<EnvironmentSpec | undefined> {
    const written = await this.store.getWrittenSpec(environment.id);
    if (written === undefined) return undefined;
    const { merged } = await resolveExtends(written.spec, lookup);
    const spec = parseEnvironmentSpec({
      ...(merged as Record<string, unknown>),
      repository: environment.spec.repository,
      secrets: environment.spec.secrets,
      members: environment.spec.members,
    });
    await this.checkAvailability?.(spec);
    return spec;
  }
}

import type { Command } from 'commander';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { formatTable, type CliContext } from '../cli-context.js';
import { collect, withClientOptions, type ClientOptions } from '../client-options.js';
import { parseEnvironmentFile } from '../../domain/environment/environment-file.js';
import { BerthError } from '../../errors/berth-error.js';
import type { EnvironmentSpec } from '../../domain/environment/environment-spec.js';
import type { CacheEntryView } from '../../server/task-views.js';
import { registerEnvTestCommand } from './task-command.js';
import { registerEnvImportCommand } from './env-import-command.js';
import { registerEnvDiffCommand } from './env-diff-command.js';
import { describeEnvironment } from '../environment-description.js';
import { cacheSize, describeCacheReset, type CacheResetView } from '../cache-description.js';
import {
  environmentWarnings,
  type SpecWarning,
} from '../../domain/environment/environment-warnings.js';

interface EnvironmentView {
  id: string;
  name: string;
  spec: EnvironmentSpec;
  secrets: string[];
  createdAt: string;
  updatedAt: string;
  revision: number;
}

/** What the server answers to create and update: the environment, and warnings on it. */
interface WrittenEnvironmentView extends EnvironmentView {
  warnings?: SpecWarning[];
}

/** Warnings go to stderr, one a line, so that stdout stays what the command answers. */
function printWarnings(ctx: CliContext, file: string, warnings: readonly SpecWarning[]): void {
  for (const warning of warnings) ctx.err(`warning: ${file}: ${warning.path}: ${warning.message}`);
}

interface SecretOptions {
  secret?: string[];
  secretFromEnv?: string[];
}

/** Reads and checks an environment file locally (line and column on refusal), returning what to send. */
function readEnvironmentFile(
  ctx: CliContext,
  file: string,
): { raw: unknown; spec: EnvironmentSpec | undefined } {
  const text = ctx.readFile(file);
  let raw: unknown;
  try {
    raw = parseYaml(text) as unknown;
  } catch {
    // Malformed YAML: the refusal with the line and column (and exit code 2).
    return { raw: undefined, spec: parseEnvironmentFile(text, file) };
  }
  // A file that extends a template is checked by the server, merged over the template: alone,
  // it may leave to the template what another field needs (internet.access for domains).
  if (extendsTemplate(raw)) return { raw, spec: undefined };
  const spec = parseEnvironmentFile(text, file);
  return { raw, spec };
}

function extendsTemplate(raw: unknown): boolean {
  return raw !== null && typeof raw === 'object' && 'extends' in raw;
}

function secretsFrom(ctx: CliContext, options: SecretOptions): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const pair of options.secret ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new BerthError('invalid_input', `--secret takes NAME=VALUE (got a value without "=")`);
    secrets[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  for (const name of options.secretFromEnv ?? []) {
    const value = ctx.variable(name);
    if (value === undefined)
      throw new BerthError(
        'invalid_input',
        `--secret-from-env ${name}: the variable ${name} is not set`,
      );
    secrets[name] = value;
  }
  return secrets;
}

export function registerEnvCommands(program: Command, ctx: CliContext): void {
  const env = program.command('env').description('manage environments');

  withClientOptions(
    env
      .command('create')
      .description('create an environment from a YAML file')
      .requiredOption('-f, --file <file>', 'environment file (YAML)')
      .option('--secret <NAME=VALUE>', 'a secret value (repeatable)', collect)
      .option(
        '--secret-from-env <NAME>',
        'a secret taken from this variable (repeatable)',
        collect,
      ),
  ).action(async (options: ClientOptions & SecretOptions & { file: string }) => {
    const { raw } = readEnvironmentFile(ctx, options.file);
    const secrets = secretsFrom(ctx, options);
    const view = await ctx
      .client(options)
      .request<WrittenEnvironmentView>('POST', '/v1/environments', { spec: raw, secrets })
      .catch((error: unknown) => {
        // The name is taken: the person most likely meant to change their environment.
        const name = error instanceof BerthError ? error.details.name : undefined;
        if (error instanceof BerthError && error.code === 'conflict' && typeof name === 'string')
          throw new BerthError(
            'conflict',
            `${error.message}; to change it: berth env update ${name} --file ${options.file} (or give this one another name)`,
            error.details,
          );
        throw error;
      });
    printWarnings(ctx, options.file, view.warnings ?? []);
    if (options.json) ctx.json(view);
    else ctx.out(`created environment ${view.name} (${view.id})`);
  });

  withClientOptions(env.command('list').description('list the environments you can see')).action(
    async (options: ClientOptions) => {
      const { environments } = await ctx
        .client(options)
        .request<{ environments: EnvironmentView[] }>('GET', '/v1/environments');
      if (options.json) return ctx.json({ environments });
      if (environments.length === 0) return ctx.out('no environments');
      ctx.out(
        formatTable(
          environments.map((e) => ({
            name: e.name,
            id: e.id,
            repository: e.spec.repository.url,
            image: e.spec.image,
            internet: e.spec.internet.access,
            updated: e.updatedAt,
          })),
          ['name', 'id', 'repository', 'image', 'internet', 'updated'],
        ),
      );
    },
  );

  withClientOptions(
    env
      .command('show')
      .description('show one environment')
      .argument('<env>', 'environment name')
      .option('--resolved', 'print the environment merged over its templates (YAML)'),
  ).action(async (name: string, options: ClientOptions & { resolved?: boolean }) => {
    if (options.resolved) {
      const resolved = await ctx
        .client(options)
        .request<{ name: string; extends: string[]; spec: EnvironmentSpec }>(
          'GET',
          `/v1/environments/${encodeURIComponent(name)}/resolved`,
        );
      if (options.json) return ctx.json(resolved);
      ctx.out(
        resolved.extends.length > 0
          ? `# ${resolved.name} merged over ${resolved.extends.map((t) => `template ${t}`).join(' → ')}`
          : `# ${resolved.name} (extends no template)`,
      );
      return ctx.out(toYaml(resolved.spec).trimEnd());
    }
    const view = await ctx
      .client(options)
      .request<EnvironmentView>('GET', `/v1/environments/${encodeURIComponent(name)}`);
    if (options.json) ctx.json(view);
    else ctx.out(describeEnvironment(view));
  });

  withClientOptions(
    env
      .command('update')
      .description('replace an environment with the content of a YAML file')
      .argument('<env>', 'environment name')
      .requiredOption('-f, --file <file>', 'environment file (YAML)')
      .option('--secret <NAME=VALUE>', 'set a secret (repeatable)', collect)
      .option('--secret-from-env <NAME>', 'set a secret from this variable (repeatable)', collect)
      .option('--remove-secret <NAME>', 'remove a secret (repeatable)', collect),
  ).action(
    async (
      name: string,
      options: ClientOptions & SecretOptions & { file: string; removeSecret?: string[] },
    ) => {
      const { raw } = readEnvironmentFile(ctx, options.file);
      const secrets = secretsFrom(ctx, options);
      const view = await ctx
        .client(options)
        .request<WrittenEnvironmentView>('PUT', `/v1/environments/${encodeURIComponent(name)}`, {
          spec: raw,
          secrets,
          removeSecrets: options.removeSecret ?? [],
        });
      printWarnings(ctx, options.file, view.warnings ?? []);
      if (options.json) ctx.json(view);
      else ctx.out(`updated environment ${view.name} (revision ${view.revision})`);
    },
  );

  withClientOptions(
    env
      .command('delete')
      .description('delete an environment')
      .argument('<env>', 'environment name'),
  ).action(async (name: string, options: ClientOptions) => {
    await ctx
      .client(options)
      .request<undefined>('DELETE', `/v1/environments/${encodeURIComponent(name)}`);
    if (options.json) ctx.json({ deleted: name });
    else ctx.out(`deleted environment ${name}`);
  });

  env
    .command('validate')
    .description('check an environment file without a server')
    .requiredOption('-f, --file <file>', 'environment file (YAML)')
    .option('--json', 'print JSON')
    .action((options: { file: string; json?: boolean }) => {
      // The file alone, also when it extends a template (the server checks the merge).
      const spec = parseEnvironmentFile(ctx.readFile(options.file), options.file);
      const warnings = environmentWarnings(spec);
      printWarnings(ctx, options.file, warnings);
      if (options.json) ctx.json({ valid: true, spec, warnings });
      else ctx.out(`${options.file}: valid environment "${spec.name}"`);
    });

  registerEnvTestCommand(env, ctx);
  registerEnvImportCommand(env, ctx);
  registerEnvDiffCommand(env, ctx);

  const cache = env.command('cache').description("an environment's cache entry");
  withClientOptions(
    cache
      .command('show')
      .description('key, age, size and commit of the cache entries')
      .argument('<env>', 'environment name'),
  ).action(async (name: string, options: ClientOptions) => {
    const view = await ctx
      .client(options)
      .request<{ environment: string; entries: CacheEntryView[] }>(
        'GET',
        `/v1/environments/${encodeURIComponent(name)}/cache`,
      );
    if (options.json) return ctx.json(view);
    if (view.entries.length === 0)
      return ctx.out(`${name}: no cache entry (the next task runs the setup script)`);
    ctx.out(
      formatTable(
        view.entries.map((e) => ({
          key: e.key.slice(0, 16),
          age: `${Math.round(e.ageMs / 60000)} min`,
          size: cacheSize(e),
          commit: e.commit.slice(0, 12),
          state:
            e.state === 'stale'
              ? `stale (${e.staleBecause.map((p) => (p === 'baseImage' ? 'base image' : p === 'repositoryFile' ? 'repository file' : p)).join(', ')} changed)`
              : e.state,
          expires: e.expiresAt,
          image: e.image,
        })),
        ['key', 'age', 'size', 'commit', 'state', 'expires', 'image'],
      ),
    );
  });
  withClientOptions(
    cache
      .command('reset')
      .description('drop the cache entries; the next task runs setup again')
      .argument('<env>', 'environment name'),
  ).action(async (name: string, options: ClientOptions) => {
    const view = await ctx
      .client(options)
      .request<CacheResetView>('DELETE', `/v1/environments/${encodeURIComponent(name)}/cache`);
    if (options.json) ctx.json(view);
    else ctx.out(describeCacheReset(name, view));
  });
}

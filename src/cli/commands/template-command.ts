import type { Command } from 'commander';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { formatTable, type CliContext } from '../cli-context.js';
import { withClientOptions, type ClientOptions } from '../client-options.js';
import type { TemplateSpec } from '../../domain/environment/environment-template.js';
import { BerthError } from '../../errors/berth-error.js';

/**
 * `berth template create|update|show|list|delete` (issue 16): templates whose fields environments
 * take with `extends: NAME` (docs/environments.md, "Templates").
 */

interface TemplateView {
  id: string;
  name: string;
  spec: TemplateSpec;
  createdAt: string;
  updatedAt: string;
  revision: number;
}

function readTemplateFile(ctx: CliContext, file: string): unknown {
  const text = ctx.readFile(file);
  try {
    return parseYaml(text) as unknown;
  } catch (error) {
    throw new BerthError('invalid_environment', `${file}: ${(error as Error).message}`);
  }
}

const path = (name: string) => `/v1/templates/${encodeURIComponent(name)}`;

export function registerTemplateCommands(program: Command, ctx: CliContext): void {
  const template = program
    .command('template')
    .description('manage templates (shared environment fields, taken with extends: NAME)');

  withClientOptions(
    template
      .command('create')
      .description('create a template from a YAML file (admin token)')
      .requiredOption('-f, --file <file>', 'template file (YAML)'),
  ).action(async (options: ClientOptions & { file: string }) => {
    const spec = readTemplateFile(ctx, options.file);
    const view = await ctx.client(options).request<TemplateView>('POST', '/v1/templates', { spec });
    if (options.json) ctx.json(view);
    else ctx.out(`created template ${view.name} (${view.id})`);
  });

  withClientOptions(
    template
      .command('update')
      .description(
        'replace a template with a YAML file (admin token); the environments built on it are merged again',
      )
      .argument('<name>', 'template name')
      .requiredOption('-f, --file <file>', 'template file (YAML)'),
  ).action(async (name: string, options: ClientOptions & { file: string }) => {
    const spec = readTemplateFile(ctx, options.file);
    const view = await ctx
      .client(options)
      .request<TemplateView & { environments: string[] }>('PUT', path(name), { spec });
    if (options.json) return ctx.json(view);
    ctx.out(`updated template ${view.name} (revision ${view.revision})`);
    if (view.environments.length > 0)
      ctx.out(
        `merged again: ${view.environments.join(', ')} (their next tasks rebuild the cache: template ${view.name} changed)`,
      );
  });

  withClientOptions(
    template.command('show').description('show a template').argument('<name>', 'template name'),
  ).action(async (name: string, options: ClientOptions) => {
    const view = await ctx.client(options).request<TemplateView>('GET', path(name));
    if (options.json) return ctx.json(view);
    ctx.out(
      `# template ${view.name} (${view.id}), revision ${view.revision}, updated ${view.updatedAt}`,
    );
    ctx.out(toYaml(view.spec).trimEnd());
  });

  withClientOptions(template.command('list').description('list the templates')).action(
    async (options: ClientOptions) => {
      const { templates } = await ctx
        .client(options)
        .request<{ templates: TemplateView[] }>('GET', '/v1/templates');
      if (options.json) return ctx.json({ templates });
      if (templates.length === 0) return ctx.out('no templates');
      ctx.out(
        formatTable(
          templates.map((t) => ({
            name: t.name,
            extends: t.spec.extends ?? '',
            description: t.spec.description ?? '',
            revision: String(t.revision),
            updated: t.updatedAt,
          })),
          ['name', 'extends', 'description', 'revision', 'updated'],
        ),
      );
    },
  );

  withClientOptions(
    template
      .command('delete')
      .description('delete a template no environment or template extends (admin token)')
      .argument('<name>', 'template name'),
  ).action(async (name: string, options: ClientOptions) => {
    await ctx.client(options).request<undefined>('DELETE', path(name));
    if (options.json) ctx.json({ deleted: name });
    else ctx.out(`deleted template ${name}`);
  });
}

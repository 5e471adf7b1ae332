import { z } from 'zod';
import { environmentSpecSchema } from '../domain/environment/environment-spec.js';
import {
  TEMPLATE_CHAIN_MAX_DEPTH,
  templateSpecSchema,
  type Template,
} from '../domain/environment/environment-template.js';
import { isYamlBody, readEnvironmentJson, readYamlValue } from './request-body.js';
import { pathParam, type RouteDefinition, type RouteDeps } from './route-table.js';
import { views } from './views.js';

/**
 * The template routes (issue 16) and an environment's merge over its templates. A template body
 * is JSON ({ "spec": … }) or, with a YAML Content-Type, the template file itself; both are parsed
 * on the worker thread like environment bodies (request-body.ts). Any token reads templates;
 * writing one takes an admin token (template-service.ts).
 */

const templateBody = {
  parse: z.strictObject({ spec: z.unknown() }),
  document: z.strictObject({
    spec: templateSpecSchema.describe(
      'The template: name, description, extends, and environment fields (image, versions, setup, maintenance, env, internet, services, resources, verify, verifyRequired, model) as in an environment file',
    ),
  }),
};

const templateView = z.object({
  id: z.string().describe('tpl_…'),
  name: z.string(),
  spec: templateSpecSchema.describe('The template as written'),
  createdAt: z.string(),
  updatedAt: z.string(),
  revision: z.number().int(),
});

const templateList = z.object({ templates: z.array(templateView) });

const updatedTemplateView = templateView.extend({
  environments: z
    .array(z.string())
    .describe('The environments built on the template, merged again with the change'),
});

const resolvedEnvironmentView = z.object({
  name: z.string(),
  extends: z
    .array(z.string())
    .describe(
      `The chain of templates, nearest first (at most ${TEMPLATE_CHAIN_MAX_DEPTH}); empty without extends`,
    ),
  templates: z.array(z.object({ name: z.string(), revision: z.number().int() })),
  spec: environmentSpecSchema.describe('The environment merged over its templates (what runs)'),
});

function templateViewOf(template: Template): z.output<typeof templateView> {
  return {
    id: template.id,
    name: template.name,
    spec: template.spec,
    createdAt: template.createdAt,
    updatedAt: template.updatedAt,
    revision: template.revision,
  };
}

const readTemplate = async (request: Request): Promise<unknown> =>
  isYamlBody(request)
    ? await readYamlValue(request)
    : (await readEnvironmentJson(request, templateBody.parse)).spec;

const repositoryFileDiffView = z.object({
  path: z.string().describe('repository.config'),
  branch: z.string(),
  commit: z.string().describe("The branch's head the file was read at"),
  fields: z.array(
    z.object({
      field: z.string(),
      state: z
        .enum(['same', 'environment', 'file', 'both'])
        .describe(
          "same in both; only in the stored environment; only in the file; in both and different (the environment's wins)",
        ),
      environment: z.unknown().optional(),
      file: z.unknown().optional(),
    }),
  ),
});

export const templateRoutes: RouteDefinition<RouteDeps>[] = [
  {
    method: 'get',
    path: '/v1/templates',
    summary: 'Templates (every token may read them)',
    auth: 'token',
    responses: { 200: { description: 'Templates, by name', schema: templateList } },
    handler: async (c, deps) => {
      const list = await deps.environments.templates.list(c.get('caller'));
      return c.json({ templates: list.map(templateViewOf) });
    },
  },
  {
    method: 'post',
    path: '/v1/templates',
    summary: 'Create a template (admin tokens only)',
    auth: 'token',
    body: { schema: templateBody.document, environmentFile: true },
    responses: { 201: { description: 'The template', schema: templateView } },
    errors: ['invalid_input', 'invalid_environment', 'forbidden', 'conflict', 'payload_too_large'],
    handler: async (c, deps) => {
      const spec = await readTemplate(c.req.raw);
      const created = await deps.environments.templates.create(c.get('caller'), spec);
      return c.json(templateViewOf(created), 201);
    },
  },
  {
    method: 'get',
    path: '/v1/templates/:name',
    summary: 'One template',
    auth: 'token',
    params: { name: 'The template name' },
    responses: { 200: { description: 'The template', schema: templateView } },
    errors: ['not_found'],
    handler: async (c, deps) =>
      c.json(
        templateViewOf(
          await deps.environments.templates.get(c.get('caller'), pathParam(c, 'name')),
        ),
      ),
  },
  {
    method: 'put',
    path: '/v1/templates/:name',
    summary:
      'Replace a template (admin tokens only); the environments built on it are merged again, or the change is refused naming the one it would make invalid',
    auth: 'token',
    params: { name: 'The template name' },
    body: { schema: templateBody.document, environmentFile: true },
    responses: {
      200: {
        description: 'The template and the environments merged again',
        schema: updatedTemplateView,
      },
    },
    errors: [
      'invalid_input',
      'invalid_environment',
      'forbidden',
      'not_found',
      'conflict',
      'payload_too_large',
    ],
    handler: async (c, deps) => {
      const spec = await readTemplate(c.req.raw);
      const { template, environments } = await deps.environments.templates.update(
        c.get('caller'),
        pathParam(c, 'name'),
        spec,
      );
      return c.json({ ...templateViewOf(template), environments });
    },
  },
  {
    method: 'delete',
    path: '/v1/templates/:name',
    summary:
      'Delete a template (admin tokens only); refused (409) while environments or templates extend it, naming them',
    auth: 'token',
    params: { name: 'The template name' },
    responses: { 204: { description: 'Deleted' } },
    errors: ['forbidden', 'not_found', 'conflict'],
    handler: async (c, deps) => {
      await deps.environments.templates.delete(c.get('caller'), pathParam(c, 'name'));
      return c.body(null, 204);
    },
  },
  {
    method: 'get',
    path: '/v1/environments/:name/diff',
    summary:
      'The stored environment against its repository file (repository.config), field by field (berth env diff)',
    auth: 'token',
    params: { name: 'The environment name' },
    query: { branch: 'Read the file at the head of this branch (default: the default branch)' },
    responses: { 200: { description: 'Field by field', schema: repositoryFileDiffView } },
    errors: ['invalid_input', 'invalid_environment', 'not_found'],
    handler: async (c, deps) => {
      const environment = await deps.environments.get(c.get('caller'), pathParam(c, 'name'));
      const branch = c.req.query('branch');
      return c.json(
        await deps.environments.templates.repositoryFileDiff(
          environment,
          branch === undefined || branch === '' ? undefined : branch,
        ),
      );
    },
  },
  {
    method: 'get',
    path: '/v1/environments/:name/resolved',
    summary:
      'The environment merged over its templates, with the chain (berth env show --resolved)',
    auth: 'token',
    params: { name: 'The environment name' },
    responses: { 200: { description: 'The merged environment', schema: resolvedEnvironmentView } },
    errors: ['not_found'],
    handler: async (c, deps) => {
      const environment = await deps.environments.get(c.get('caller'), pathParam(c, 'name'));
      const chain = await deps.environments.templates.chainOf(environment.spec);
      return c.json({
        name: environment.spec.name,
        extends: chain.map((t) => t.name),
        templates: chain.map((t) => ({ name: t.name, revision: t.revision })),
        spec: views.environment(environment).spec,
      });
    },
  },
];

import {
  documentedRequestBodies,
  environmentList,
  environmentView,
  requestBodies,
  validateResult,
  writtenEnvironmentView,
} from './api-schemas.js';
import { environmentWarnings } from '../domain/environment/environment-warnings.js';
import { isYamlBody, readEnvironmentJson, readYamlSpec } from './request-body.js';
import { pathParam, type RouteDefinition, type RouteDeps } from './route-table.js';
import { views } from './views.js';
import { templateRoutes } from './template-routes.js';

/**
 * The environment routes. Those that take a spec take JSON ({ spec, … }) or, with a YAML
 * Content-Type, an environment file as the whole body (the spec alone: secret values need the
 * JSON shape). Either is parsed on the worker thread, off the event loop (request-body.ts).
 */

const yamlOr = async <T>(request: Request, json: () => Promise<T>) =>
  isYamlBody(request) ? { spec: await readYamlSpec(request) } : json();

export const environmentRoutes: RouteDefinition<RouteDeps>[] = [
  {
    method: 'get',
    path: '/v1/environments',
    summary: 'Environments the caller may see',
    auth: 'token',
    responses: { 200: { description: 'Environments, by name', schema: environmentList } },
    handler: async (c, deps) => {
      const list = await deps.environments.list(c.get('caller'));
      return c.json({ environments: list.map((environment) => views.environment(environment)) });
    },
  },
  {
    method: 'post',
    path: '/v1/environments/validate',
    summary: "Validate an environment against the schema and this server's rules, storing nothing",
    auth: 'token',
    body: { schema: documentedRequestBodies.validate, environmentFile: true },
    responses: { 200: { description: 'The normalised environment', schema: validateResult } },
    errors: ['invalid_input', 'invalid_environment', 'payload_too_large'],
    handler: async (c, deps) => {
      const body = await yamlOr(c.req.raw, () =>
        readEnvironmentJson(c.req.raw, requestBodies.validate),
      );
      const spec = await deps.environments.check(body.spec);
      return c.json({ valid: true as const, spec, warnings: environmentWarnings(spec) });
    },
  },
  {
    method: 'post',
    path: '/v1/environments',
    summary: 'Create an environment (with its secrets, in one step)',
    auth: 'token',
    body: { schema: documentedRequestBodies.create, environmentFile: true },
    responses: {
      201: { description: 'The environment, with warnings', schema: writtenEnvironmentView },
    },
    errors: ['invalid_input', 'invalid_environment', 'forbidden', 'conflict', 'payload_too_large'],
    handler: async (c, deps) => {
      const body = await yamlOr(c.req.raw, () =>
        readEnvironmentJson(c.req.raw, requestBodies.create),
      );
      const created = await deps.environments.create(c.get('caller'), {
        spec: body.spec,
        secrets: 'secrets' in body ? body.secrets : undefined,
      });
      return c.json(
        { ...views.environment(created), warnings: environmentWarnings(created.spec) },
        201,
      );
    },
  },
  {
    method: 'get',
    path: '/v1/environments/:name',
    summary: 'One environment (404 also when the caller is not a member)',
    auth: 'token',
    params: { name: 'The environment name' },
    responses: { 200: { description: 'The environment', schema: environmentView } },
    errors: ['not_found'],
    handler: async (c, deps) =>
      c.json(views.environment(await deps.environments.get(c.get('caller'), pathParam(c, 'name')))),
  },
  {
    method: 'put',
    path: '/v1/environments/:name',
    summary: 'Replace the spec and change secrets, in one step; the name cannot change',
    auth: 'token',
    params: { name: 'The environment name' },
    body: { schema: documentedRequestBodies.update, environmentFile: true },
    responses: {
      200: { description: 'The environment, with warnings', schema: writtenEnvironmentView },
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
      const body = await yamlOr(c.req.raw, () =>
        readEnvironmentJson(c.req.raw, requestBodies.update),
      );
      const updated = await deps.environments.update(c.get('caller'), pathParam(c, 'name'), {
        spec: body.spec,
        secrets: 'secrets' in body ? body.secrets : undefined,
        removeSecrets: 'removeSecrets' in body ? body.removeSecrets : undefined,
      });
      return c.json({ ...views.environment(updated), warnings: environmentWarnings(updated.spec) });
    },
  },
  {
    method: 'delete',
    path: '/v1/environments/:name',
    summary: 'Delete the environment and its secrets',
    auth: 'token',
    params: { name: 'The environment name' },
    responses: { 204: { description: 'Deleted' } },
    errors: ['not_found'],
    handler: async (c, deps) => {
      await deps.environments.delete(c.get('caller'), pathParam(c, 'name'));
      return c.body(null, 204);
    },
  },
  // Templates and an environment's merge over them (issue 16), listed with the environments.
  ...templateRoutes,
];

import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../errors/berth-error.js';
import { errorBody } from './api-schemas.js';
import { environmentSpecSchema } from '../domain/environment/environment-spec.js';
import { YAML_MEDIA_TYPES } from './request-body.js';
import { environmentRoutes } from './environment-routes.js';
import { openApiPath, pathParamNames, type RouteDoc } from './route-table.js';
import { serverRoutes } from './server-routes.js';
import { sessionRoutes } from './session-routes.js';
import { taskRoutes } from './task-routes.js';
import { tokenRoutes } from './token-routes.js';
import { metricsRoutes, usageRoutes } from './usage-routes.js';

/**
 * The OpenAPI 3.1 document of the API, generated from the route declarations the server mounts
 * (route-table.ts) and the same zod schemas the server parses with (z.toJSONSchema). Served at
 * GET /openapi.json; the typed client's types (scripts/generate-client-types.js) are generated from it.
 */

type JsonSchema = Record<string, unknown>;

function isEmpty(schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && Object.keys(schema).length === 0;
}

/**
 * Output schemas of fields normalised by a transform (a repository given as a URL, a script as a
 * string) come out empty; the normalised form is the object branch of the input schema, with its
 * defaulted fields always present.
 */
function patchNormalised(output: JsonSchema, input: JsonSchema): JsonSchema {
  const outProps = output.properties as Record<string, unknown> | undefined;
  const inProps = input.properties as Record<string, JsonSchema> | undefined;
  if (!outProps || !inProps) return output;
  for (const [key, schema] of Object.entries(outProps)) {
    const branches = inProps[key]?.anyOf as JsonSchema[] | undefined;
    const objectBranch = branches?.find((b) => b.type === 'object');
    if (isEmpty(schema) && objectBranch) {
      outProps[key] = { ...objectBranch, required: Object.keys(objectBranch.properties as object) };
    }
  }
  return output;
}

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const generated = z.toJSONSchema(schema, {
    io,
    target: 'draft-2020-12',
    unrepresentable: 'any',
  }) as JsonSchema;
  delete generated.$schema;
  return generated;
}

function responseSchema(schema: z.ZodType): JsonSchema {
  const output = schemaOf(schema, 'output');
  const input = schemaOf(schema, 'input');
  // Patch the spec wherever a response carries one.
  const walk = (out: JsonSchema, inp: JsonSchema): void => {
    const outProps = out.properties as Record<string, JsonSchema> | undefined;
    const inProps = inp.properties as Record<string, JsonSchema> | undefined;
    if (outProps?.spec && inProps?.spec) patchNormalised(outProps.spec, inProps.spec);
    for (const key of Object.keys(outProps ?? {})) {
      const o = outProps?.[key];
      const i = inProps?.[key];
      if (o?.items && i?.items) walk(o.items as JsonSchema, i.items as JsonSchema);
    }
  };
  walk(output, input);
  return output;
}

const json = (schema: JsonSchema) => ({ 'application/json': { schema } });
const body = (schema: z.ZodType) => ({ required: true, content: json(schemaOf(schema, 'input')) });
/** The environment routes take JSON or, under a YAML media type, an environment file alone. */
const environmentBody = (schema: z.ZodType) => ({
  required: true,
  description:
    'JSON in this shape, or an environment file (YAML) as the whole body with Content-Type application/yaml, text/yaml or application/x-yaml: the spec alone, no secret values (set those with the JSON shape); a YAML refusal gives line and column in details.issues',
  content: {
    ...json(schemaOf(schema, 'input')),
    ...Object.fromEntries(
      YAML_MEDIA_TYPES.map((type) => [
        type,
        { schema: { $ref: '#/components/schemas/EnvironmentFile' } },
      ]),
    ),
  },
});
const errorRef = { $ref: '#/components/schemas/Error' };
const errors = (...codes: (keyof typeof ERROR_CODES)[]) =>
  Object.fromEntries(
    [...new Set(codes.map((code) => ERROR_CODES[code].http))].map((status) => [
      String(status),
      {
        description: codes.filter((code) => ERROR_CODES[code].http === status).join(', '),
        content: json(errorRef),
      },
    ]),
  );
const nameParam = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description,
});

/** Every route the server can serve, in the order the document lists them. */
export const documentedRoutes: readonly RouteDoc[] = [
  ...serverRoutes,
  ...sessionRoutes,
  ...tokenRoutes,
  ...environmentRoutes,
  ...taskRoutes,
  ...metricsRoutes,
  ...usageRoutes,
];

const TOKEN_ERRORS: readonly ErrorCode[] = ['unauthorized', 'internal'];

function operation(route: RouteDoc): JsonSchema {
  const responses: JsonSchema = {};
  for (const [status, response] of Object.entries(route.responses)) {
    if (!response.schema) {
      responses[status] = { description: response.description };
      continue;
    }
    const content: JsonSchema = json(responseSchema(response.schema));
    if (response.eventStream) content['text/event-stream'] = { schema: { type: 'string' } };
    responses[status] = { description: response.description, content };
  }
  const codes = [...(route.errors ?? []), ...(route.auth === 'token' ? TOKEN_ERRORS : [])];
  const query = Object.entries(route.query ?? {}).map(([name, description]) => ({
    name,
    in: 'query',
    required: false,
    schema: { type: 'string' },
    description,
  }));
  return {
    summary: route.summary,
    ...(route.auth === 'token' ? { security: [{ bearer: [] }, { session: [] }] } : {}),
    ...(query.length > 0 ? { parameters: query } : {}),
    ...(route.body
      ? {
          requestBody: route.body.environmentFile
            ? environmentBody(route.body.schema)
            : body(route.body.schema),
        }
      : {}),
    responses: { ...responses, ...errors(...codes) },
  };
}

export function buildOpenApiDocument(
  version: string,
  routes: readonly RouteDoc[] = documentedRoutes,
): JsonSchema {
  const paths: Record<string, JsonSchema> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    const item = (paths[path] ??= {});
    const names = pathParamNames(route.path);
    if (names.length > 0 && item.parameters === undefined)
      item.parameters = names.map((name) => nameParam(name, route.params?.[name] ?? name));
    if (item[route.method] !== undefined)
      throw new Error(`route ${route.method.toUpperCase()} ${route.path} is declared twice`);
    item[route.method] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Berth API',
      version,
      description:
        'Every error has the shape { code, message, details, requestId }. Authenticate with "Authorization: Bearer <token>" (or, in the web UI, the session cookie from POST /v1/session).',
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        session: { type: 'apiKey', in: 'cookie', name: 'berth_session' },
      },
      schemas: {
        Error: schemaOf(errorBody, 'output'),
        EnvironmentFile: schemaOf(environmentSpecSchema, 'input'),
      },
    },
    paths,
  };
}

import { z } from 'zod';
import { ERROR_CODES } from '../errors/berth-error.js';
import {
  createdToken,
  documentedRequestBodies,
  environmentList,
  environmentView,
  errorBody,
  healthView,
  tokenList,
  validateResult,
  whoamiView,
  createTaskBody,
  taskView,
  taskList,
  eventList,
  diffView,
  cacheView,
  cacheResetView,
  serverStatusView,
  pickTaskBody,
  pickResult,
  pullRequestBody,
  pullRequestResult,
  followUpBody,
  followUpResult,
} from './api-schemas.js';
import { environmentSpecSchema } from '../domain/environment/environment-spec.js';
import { YAML_MEDIA_TYPES } from './request-body.js';
import { sessionBody, sessionView } from './session-routes.js';

/**
 * The OpenAPI 3.1 document of the API, generated from the same zod schemas the server parses
 * with (z.toJSONSchema). Served at GET /openapi.json.
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
const ok = (description: string, schema: z.ZodType) => ({
  description,
  content: json(responseSchema(schema)),
});
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

export function buildOpenApiDocument(version: string): JsonSchema {
  const authed = [{ bearer: [] }];
  const common = ['unauthorized', 'internal'] as const;
  return {
    openapi: '3.1.0',
    info: {
      title: 'Berth API',
      version,
      description:
        'Every error has the shape { code, message, details, requestId }. Authenticate with "Authorization: Bearer <token>".',
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
    paths: {
      '/health': {
        get: {
          summary: 'Liveness and version',
          responses: { '200': ok('The server is up', healthView) },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1 document' } },
        },
      },
      '/v1/whoami': {
        get: {
          summary: 'The token this request authenticated with',
          security: authed,
          responses: { '200': ok('The caller', whoamiView), ...errors(...common) },
        },
      },
      '/v1/server': {
        get: {
          summary:
            "What berth doctor checks: the version; for an admin token also the data directory and the engine's free disk against BERTH_MIN_FREE_DISK_MB",
          security: authed,
          responses: { '200': ok('The server', serverStatusView), ...errors(...common) },
        },
      },
      '/v1/session': {
        post: {
          summary:
            "The web UI's sign-in: a token exchanged for an HttpOnly, SameSite=Strict session cookie (berth_session); a wrong token answers 401 'token not valid'",
          requestBody: body(sessionBody),
          responses: {
            '201': ok('Signed in; the cookie is set', sessionView),
            ...errors('invalid_input', 'forbidden', ...common),
          },
        },
        get: {
          summary:
            'Who is signed in, and the CSRF token a cookie-authenticated change must send as x-berth-csrf',
          security: [...authed, { session: [] }],
          responses: { '200': ok('The caller', sessionView), ...errors(...common) },
        },
        delete: {
          summary: 'Sign out: the session ends and its cookie is cleared',
          security: [...authed, { session: [] }],
          responses: { '204': { description: 'Signed out' }, ...errors('forbidden', ...common) },
        },
      },
      '/v1/environments': {
        get: {
          summary: 'Environments the caller may see',
          security: authed,
          responses: { '200': ok('Environments, by name', environmentList), ...errors(...common) },
        },
        post: {
          summary: 'Create an environment (with its secrets, in one step)',
          security: authed,
          requestBody: environmentBody(documentedRequestBodies.create),
          responses: {
            '201': ok('The environment', environmentView),
            ...errors(
              'invalid_input',
              'invalid_environment',
              'conflict',
              'payload_too_large',
              ...common,
            ),
          },
        },
      },
      '/v1/environments/validate': {
        post: {
          summary:
            "Validate an environment against the schema and this server's rules, storing nothing",
          security: authed,
          requestBody: environmentBody(documentedRequestBodies.validate),
          responses: {
            '200': ok('The normalised environment', validateResult),
            ...errors('invalid_input', 'invalid_environment', 'payload_too_large', ...common),
          },
        },
      },
      '/v1/environments/{name}': {
        parameters: [nameParam('name', 'The environment name')],
        get: {
          summary: 'One environment (404 also when the caller is not a member)',
          security: authed,
          responses: {
            '200': ok('The environment', environmentView),
            ...errors('not_found', ...common),
          },
        },
        put: {
          summary: 'Replace the spec and change secrets, in one step; the name cannot change',
          security: authed,
          requestBody: environmentBody(documentedRequestBodies.update),
          responses: {
            '200': ok('The environment', environmentView),
            ...errors(
              'invalid_input',
              'invalid_environment',
              'not_found',
              'conflict',
              'payload_too_large',
              ...common,
            ),
          },
        },
        delete: {
          summary: 'Delete the environment and its secrets',
          security: authed,
          responses: { '204': { description: 'Deleted' }, ...errors('not_found', ...common) },
        },
      },
      '/v1/tokens': {
        get: {
          summary: 'All tokens (admin)',
          security: authed,
          responses: {
            '200': ok('Tokens, revoked ones included', tokenList),
            ...errors('forbidden', ...common),
          },
        },
        post: {
          summary: 'Create a token (admin); its value is in this response only',
          security: authed,
          requestBody: body(documentedRequestBodies.createToken),
          responses: {
            '201': ok('The token and its value', createdToken),
            ...errors('invalid_input', 'forbidden', 'conflict', ...common),
          },
        },
      },
      '/v1/tasks': {
        get: {
          summary:
            'Recent tasks of the environments the caller may see (?environment=NAME&limit=N)',
          security: authed,
          responses: {
            '200': ok('Tasks, newest first', taskList),
            ...errors('invalid_input', ...common),
          },
        },
        post: {
          summary: 'Submit a task: a prompt for the agent, or a command run as the agent phase',
          security: authed,
          requestBody: body(createTaskBody),
          responses: {
            '201': ok('The task with its queued attempts', taskView),
            ...errors('invalid_input', 'not_found', 'payload_too_large', ...common),
          },
        },
      },
      '/v1/tasks/{id}': {
        parameters: [nameParam('id', 'The task id (task_…)')],
        get: {
          summary: 'A task and its attempts',
          security: authed,
          responses: { '200': ok('The task', taskView), ...errors('not_found', ...common) },
        },
      },
      '/v1/tasks/{id}/cancel': {
        parameters: [nameParam('id', 'The task id')],
        post: {
          summary: 'Cancel every attempt that has not finished',
          security: authed,
          responses: { '200': ok('The task', taskView), ...errors('not_found', ...common) },
        },
      },
      '/v1/tasks/{id}/pick': {
        parameters: [nameParam('id', 'The task id')],
        post: {
          summary:
            'Pick the attempt that becomes the PR, is applied, or takes follow-ups (a failed one with a warning)',
          security: authed,
          requestBody: body(pickTaskBody),
          responses: {
            '200': ok('The task, with `picked` set', pickResult),
            ...errors('invalid_input', 'not_found', 'conflict', ...common),
          },
        },
      },
      '/v1/tasks/{id}/followup': {
        parameters: [nameParam('id', 'The task id')],
        post: {
          summary:
            'A follow-up turn on the picked attempt: a new attempt from its snapshot, with the prompt (or command); it becomes the pick',
          security: authed,
          requestBody: body(followUpBody),
          responses: {
            '201': ok('The task, with the queued turn', followUpResult),
            ...errors('invalid_input', 'not_found', 'conflict', ...common),
          },
        },
      },
      '/v1/tasks/{id}/pr': {
        parameters: [nameParam('id', 'The task id')],
        post: {
          summary:
            "Push the picked attempt's diff as branch berth/<task-id> and, for GitHub, open (or, run again, update) the pull request",
          security: authed,
          requestBody: body(pullRequestBody),
          responses: {
            '200': ok('What was pushed and the pull request', pullRequestResult),
            ...errors(
              'invalid_input',
              'not_found',
              'conflict',
              'forbidden',
              'remote_error',
              ...common,
            ),
          },
        },
      },
      '/v1/tasks/{id}/diff': {
        parameters: [nameParam('id', 'The task id')],
        get: {
          summary:
            "An attempt's diff (?attempt=ID; default the picked one; 409 when several attempts and none picked)",
          security: authed,
          responses: {
            '200': ok('The diff', diffView),
            ...errors('not_found', 'conflict', ...common),
          },
        },
      },
      '/v1/tasks/{id}/attempts/{attempt}/events': {
        parameters: [
          nameParam('id', 'The task id'),
          nameParam('attempt', 'The attempt id (att_…)'),
        ],
        get: {
          summary:
            "An attempt's events after ?after=SEQ. With Accept: text/event-stream, a live server-sent event stream (event = the event type, id = its seq; a final `end` event carries the attempt)",
          security: authed,
          responses: {
            '200': {
              description: 'Events',
              content: {
                ...json(responseSchema(eventList)),
                'text/event-stream': { schema: { type: 'string' } },
              },
            },
            ...errors('invalid_input', 'not_found', ...common),
          },
        },
      },
      '/v1/environments/{name}/cache': {
        parameters: [nameParam('name', 'The environment name')],
        get: {
          summary: "The environment's cache entries: key, age, size, commit",
          security: authed,
          responses: { '200': ok('Cache entries', cacheView), ...errors('not_found', ...common) },
        },
        delete: {
          summary: 'Reset the cache: drop the entries and their images',
          security: authed,
          responses: {
            '200': ok('What was removed, and what keeps each image that was not', cacheResetView),
            ...errors('not_found', ...common),
          },
        },
      },
      '/v1/tokens/{idOrName}': {
        parameters: [nameParam('idOrName', 'A token id (tok_…) or the name of a live token')],
        delete: {
          summary: 'Revoke a token (admin)',
          security: authed,
          responses: {
            '204': { description: 'Revoked' },
            ...errors('forbidden', 'not_found', 'conflict', ...common),
          },
        },
      },
    },
  };
}

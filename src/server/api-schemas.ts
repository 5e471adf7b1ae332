import { z } from 'zod';
import { ERROR_CODES } from '../errors/berth-error.js';
import { environmentSpecSchema } from '../domain/environment/environment-spec.js';

/**
 * The API's request and response bodies, as zod schemas. Request bodies are parsed with them and
 * /openapi.json is generated from them, so the document cannot drift from what the server does.
 * Bodies take the spec as `unknown` for parsing (the environment schema reports its own issues
 * with paths relative to the spec, like an environment file) and as the environment schema for
 * the document.
 */

const secretValues = z
  .record(z.string(), z.string())
  .describe('Secret values by name; write-only, never returned');

function environmentBodies<S extends z.ZodType>(spec: S) {
  return {
    create: z.strictObject({ spec, secrets: secretValues.optional() }),
    update: z.strictObject({
      spec,
      secrets: secretValues.optional(),
      removeSecrets: z.array(z.string()).optional().describe('Names of stored secrets to remove'),
    }),
    validate: z.strictObject({ spec }),
  };
}

/** For parsing: the spec is validated by the environment service. */
export const requestBodies = {
  ...environmentBodies(z.unknown()),
  createToken: z.strictObject({
    name: z.string(),
    admin: z.boolean().optional(),
  }),
};

/** For the document: the same bodies with the environment schema in place. */
export const documentedRequestBodies = {
  ...environmentBodies(environmentSpecSchema),
  createToken: requestBodies.createToken,
};

export const healthView = z.object({ status: z.literal('ok'), version: z.string() });

export const whoamiView = z.object({ id: z.string(), name: z.string(), admin: z.boolean() });

export const environmentView = z.object({
  id: z.string().describe('env_…'),
  name: z.string(),
  spec: environmentSpecSchema.describe(
    'The environment, normalised (shorthands expanded, defaults filled in)',
  ),
  secrets: z.array(z.string()).describe('Names of the secrets that have a value; never values'),
  createdAt: z.string(),
  updatedAt: z.string(),
  revision: z.number().int(),
});

export const environmentList = z.object({ environments: z.array(environmentView) });

export const validateResult = z.object({ valid: z.literal(true), spec: environmentSpecSchema });

export const tokenView = z.object({
  id: z.string().describe('tok_…'),
  name: z.string(),
  admin: z.boolean(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

export const tokenList = z.object({ tokens: z.array(tokenView) });

export const createdToken = z.object({
  id: z.string(),
  name: z.string(),
  admin: z.boolean(),
  createdAt: z.string(),
  token: z.string().describe('The token value: shown once, never again'),
});

export const errorBody = z.object({
  code: z.enum(
    Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]],
  ),
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
  requestId: z.string(),
});

export type EnvironmentView = z.output<typeof environmentView>;
export type TokenView = z.output<typeof tokenView>;
export type CreatedToken = z.output<typeof createdToken>;

import type { z } from 'zod';
import { BerthError } from '../errors/berth-error.js';
import {
  formatPath,
  specFromComposed,
  valueLimitRefusal,
} from '../domain/environment/environment-file.js';
import { EnvironmentYamlWorker } from './environment-yaml-worker.js';
import { ENVIRONMENT_YAML_LIMITS } from '../domain/environment/environment-yaml.js';

/** The largest request body the API accepts. */
export const MAX_BODY_BYTES = 1024 * 1024;

function tooLarge(): BerthError {
  return new BerthError(
    'payload_too_large',
    `the request body is larger than ${MAX_BODY_BYTES} bytes`,
    {
      limitBytes: MAX_BODY_BYTES,
    },
  );
}

/** The media types under which a body is an environment file (YAML) rather than JSON. */
export const YAML_MEDIA_TYPES = ['application/yaml', 'text/yaml', 'application/x-yaml'] as const;

/** Whether the request's Content-Type says YAML (parameters such as charset are ignored). */
export function isYamlBody(request: Request): boolean {
  const mediaType = (request.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
  return (YAML_MEDIA_TYPES as readonly string[]).includes(mediaType ?? '');
}

/** Reads a request's body as text, refusing more than MAX_BODY_BYTES without reading it all. */
export async function readText(request: Request): Promise<string> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = (request.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_BODY_BYTES) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Reads a YAML body as an environment file: the spec alone, parsed like `berth env validate
 * --file`, so a refusal carries the line and column (`details.issues[].line`, `.column`). The
 * YAML is parsed on a worker thread (environment-yaml-worker.ts), never on the event loop.
 */
export async function readYamlSpec(request: Request): Promise<unknown> {
  const text = await readText(request);
  const composed = await yamlWorker.compose(text);
  // The copy of the value back from the worker was one task; the schema's check is another.
  await new Promise((resolve) => setImmediate(resolve));
  try {
    specFromComposed(text, composed, 'request body');
    // And the service's own check of the spec (the caller's next step) is a third. It gets the
    // file as written (checked): it normalises it, and sees what the file left out, such as
    // repository.defaultBranch, which it then asks the repository for.
    await new Promise((resolve) => setImmediate(resolve));
    return composed.ok ? composed.value : undefined;
  } catch (error) {
    if (!composed.ok || !(error instanceof BerthError)) throw error;
    // Refused by the schema: parsed again for the positions, so the refusal has lines and columns.
    const located = await yamlWorker.compose(text, ENVIRONMENT_YAML_LIMITS, true);
    specFromComposed(text, located, 'request body');
    throw error;
  }
}

/**
 * Reads a YAML body as a value of another kind than an environment (a template): parsed on the
 * same worker and under the same limits, malformed YAML refused with its line and column; the
 * caller's own schema checks what it holds.
 */
export async function readYamlValue(request: Request): Promise<unknown> {
  const text = await readText(request);
  const composed = await yamlWorker.compose(text);
  if (!composed.ok) {
    const located = await yamlWorker.compose(text, ENVIRONMENT_YAML_LIMITS, true);
    specFromComposed(text, located, 'request body'); // throws the refusal, with positions
  }
  return composed.ok ? composed.value : undefined;
}

const yamlWorker = new EnvironmentYamlWorker();

/** Reads a request's body as JSON, refusing more than MAX_BODY_BYTES without reading it all. */
export async function readJson(request: Request): Promise<unknown> {
  const text = await readText(request);
  if (text.trim() === '')
    throw new BerthError('invalid_input', 'the request body is empty; a JSON object is expected');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new BerthError(
      'invalid_input',
      `the request body is not valid JSON: ${(error as Error).message}`,
    );
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** Reads and checks a JSON body against a schema; refusals name the field path. */
export async function readBody<S extends z.ZodType>(
  request: Request,
  schema: S,
): Promise<z.output<S>> {
  return checkBody(await readJson(request), schema);
}

/**
 * Reads the JSON body of an environment route (`{ spec, … }`): parsed and held to the limits of
 * environment files on the worker thread (environment-json.ts), never on the event loop, which
 * only copies the text over and the bounded value back. Refusals as `readBody`'s, and a spec
 * past a limit as the environment service's (`invalid_environment`, the path inside the spec).
 */
export async function readEnvironmentJson<S extends z.ZodObject>(
  request: Request,
  schema: S,
): Promise<z.output<S>> {
  const text = await readText(request);
  const parsed = await yamlWorker.composeJsonBody(text, Object.keys(schema.shape));
  if (!parsed.ok) {
    if (parsed.refusal === 'json') throw new BerthError('invalid_input', parsed.message);
    if (parsed.refusal === 'spec') throw valueLimitRefusal(parsed.issue);
    const issue = { path: formatPath(parsed.issue.path), message: parsed.issue.message };
    throw new BerthError('invalid_input', `request body: ${issue.path}: ${issue.message}`, {
      issues: [issue],
    });
  }
  // The copy of the value back from the worker was one task; the body's schema is another, and
  // the service's check of the spec (the caller's next step) a third.
  await new Promise((resolve) => setImmediate(resolve));
  const body = checkBody(parsed.value, schema);
  await new Promise((resolve) => setImmediate(resolve));
  return body;
}

/** Checks a body's value against a schema; refusals name the field path. */
function checkBody<S extends z.ZodType>(value: unknown, schema: S): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const path = issue.keys.length === 1 ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
      return {
        path: formatPath(path),
        message: `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`,
      };
    }
    if (issue.code === 'invalid_type' && valueAt(value, issue.path) === undefined) {
      return { path: formatPath(issue.path), message: 'required' };
    }
    return { path: formatPath(issue.path), message: issue.message };
  });
  const first = issues[0];
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  throw new BerthError(
    'invalid_input',
    `request body: ${first ? `${first.path}: ${first.message}` : 'invalid'}${more}`,
    {
      issues,
    },
  );
}

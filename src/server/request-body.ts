import type { z } from 'zod';
import { BerthError } from '../errors/berth-error.js';
import { formatPath } from '../domain/environment/environment-file.js';

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

/** Reads a request's body as JSON, refusing more than MAX_BODY_BYTES without reading it all. */
export async function readJson(request: Request): Promise<unknown> {
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
  const text = Buffer.concat(chunks).toString('utf8');
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
  const value = await readJson(request);
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

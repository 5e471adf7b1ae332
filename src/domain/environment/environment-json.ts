import type { EnvironmentYamlLimits } from './environment-yaml.js';

/**
 * Reading the JSON body of an environment route (`{"spec": …, "secrets": …}`) into a plain value,
 * within the limits of environment files.
 *
 * Threat model. The body comes from anyone holding a token (`POST /v1/environments/validate`,
 * `POST /v1/environments`, `PUT /v1/environments/:name`), up to the API's 1 MiB, and is read by
 * the server that also runs `/health` and the egress proxies. JSON has no aliases, but it nests
 * as deep as it is long and holds as many keys as fit: 40,000 keys cost `JSON.parse` and a count
 * of them about 50 ms, which the event loop would wait. So the server parses the text on its
 * worker thread (server/environment-yaml-worker.ts), checks it there, and takes back only a
 * value the limits bound:
 * - the spec to the key and nesting limits of environment files (`maxEntries`, `maxDepth`),
 *   refused with the path inside the spec, as a spec that did not come from a body is;
 * - the body's other known fields (secrets, removeSecrets) to the same limits, with the path in
 *   the body; no valid body comes near them (every secret becomes a name in the spec);
 * - a field the body does not have is counted but not looked into: it goes back as `null`, and
 *   the body's schema refuses it by name.
 * Keys and items are counted one by one, so a mapping of a million keys costs no more than the
 * limit; the walk uses its own stack, so no nesting can overflow it.
 *
 * Both functions are self-contained on purpose: they use nothing but their arguments, so the
 * worker runs their very source (as it does `composeEnvironmentYaml`). Keep it that way.
 */

/** Where a value passes a limit: the path of the mapping or sequence, and the reason. */
export interface ValueLimitIssue {
  path: (string | number)[];
  message: string;
}

/** The first place `value` passes the key or nesting limit, if any (a walk with its own stack). */
export function valueLimitIssue(
  value: unknown,
  limits: Pick<EnvironmentYamlLimits, 'maxEntries' | 'maxDepth'>,
): ValueLimitIssue | undefined {
  const { maxEntries, maxDepth } = limits;
  let entries = 0;
  const tooMany = (path: (string | number)[]): ValueLimitIssue => ({
    path,
    message: `more than ${maxEntries} keys and sequence items`,
  });
  const stack: Array<{ node: unknown; path: (string | number)[] }> = [{ node: value, path: [] }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { node, path } = next;
    if (node === null || typeof node !== 'object') continue;
    if (path.length >= maxDepth)
      return { path, message: `nested more than ${maxDepth} levels deep` };
    // Counted one by one, so a mapping of a million keys costs no more than the limit.
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        if (++entries > maxEntries) return tooMany(path);
        stack.push({ node: node[i], path: [...path, i] });
      }
    } else {
      for (const key in node) {
        if (!Object.hasOwn(node, key)) continue;
        if (++entries > maxEntries) return tooMany(path);
        stack.push({ node: (node as Record<string, unknown>)[key], path: [...path, key] });
      }
    }
  }
  return undefined;
}

/**
 * Why a JSON environment body is refused: `json` (empty or not JSON: the message), `spec` (the
 * spec passes a limit: the path inside the spec) or `body` (another field does: the path in the
 * body).
 */
export type EnvironmentBodyResult =
  | { ok: true; value: unknown }
  | { ok: false; refusal: 'json'; message: string }
  | { ok: false; refusal: 'spec' | 'body'; issue: ValueLimitIssue };

/**
 * The body's value, or why it is refused. `fields` are the body's own fields (the schema's); the
 * spec is the field `spec`.
 */
export function composeEnvironmentBody(
  text: string,
  limits: Pick<EnvironmentYamlLimits, 'maxEntries' | 'maxDepth'>,
  fields: readonly string[],
  findLimitIssue: typeof valueLimitIssue,
): EnvironmentBodyResult {
  if (text.trim() === '')
    return {
      ok: false,
      refusal: 'json',
      message: 'the request body is empty; a JSON object is expected',
    };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      refusal: 'json',
      message: `the request body is not valid JSON: ${(error as Error).message}`,
    };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    // Not an object: the body's schema refuses it; an array is still held to the limits.
    const issue = findLimitIssue(value, limits);
    return issue ? { ok: false, refusal: 'body', issue } : { ok: true, value };
  }
  const body = value as Record<string, unknown>;
  if (Object.hasOwn(body, 'spec')) {
    const issue = findLimitIssue(body.spec, limits);
    if (issue) return { ok: false, refusal: 'spec', issue };
  }
  // The other fields: the known ones held to the limits, the unknown ones not looked into.
  // (Entries, not assignments: a key `__proto__` stays a field, as JSON.parse made it.)
  const rest: Array<[string, unknown]> = [];
  const out: Array<[string, unknown]> = [];
  for (const key in body) {
    if (!Object.hasOwn(body, key)) continue;
    if (key === 'spec') out.push([key, body[key]]);
    else if (fields.includes(key)) {
      out.push([key, body[key]]);
      rest.push([key, body[key]]);
    } else {
      // Counted (a body of a million unknown fields is bounded too), not looked into.
      out.push([key, null]);
      rest.push([key, null]);
    }
    // Past the limit already: the walk below refuses at the body's root, no need to go on.
    if (rest.length > limits.maxEntries) break;
  }
  const issue = findLimitIssue(Object.fromEntries(rest), limits);
  if (issue) return { ok: false, refusal: 'body', issue };
  return { ok: true, value: Object.fromEntries(out) };
}

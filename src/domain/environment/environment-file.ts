import * as yaml from 'yaml';
import type { z } from 'zod';
import { BerthError } from '../../errors/berth-error.js';
import { environmentSpecSchema, type EnvironmentSpec } from './environment-spec.js';
import {
  composeEnvironmentYaml,
  ENVIRONMENT_YAML_LIMITS,
  type ComposeResult,
  type NodePositions,
} from './environment-yaml.js';
import { valueLimitIssue, type ValueLimitIssue } from './environment-json.js';

/**
 * Parsing and validation of environments: from a YAML file (with line and column for every
 * refusal) or from a JSON value (the API). The refusal always names the field path.
 */

export interface SpecIssue {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

interface RawIssue {
  rawPath: PropertyKey[];
  message: string;
  /** For unknown fields: the mapping that holds them and the first one's name. */
  unknownKey?: { mapPath: PropertyKey[]; key: string };
}

function issuesOf(error: z.ZodError): RawIssue[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => `"${k}"`).join(', ');
      const rawPath = issue.keys.length === 1 ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
      return {
        rawPath,
        message: `unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}`,
        unknownKey: { mapPath: issue.path, key: issue.keys[0] ?? '' },
      };
    }
    return { rawPath: issue.path, message: issue.message };
  });
}

function describeIssue(issue: SpecIssue): string {
  const where =
    issue.line !== undefined ? ` (line ${issue.line}, column ${issue.column ?? 1})` : '';
  return `${issue.path}: ${issue.message}${where}`;
}

function refusal(source: string, issues: SpecIssue[]): BerthError {
  const shown = issues.slice(0, 5).map(describeIssue).join('; ');
  const more = issues.length > 5 ? `; and ${issues.length - 5} more` : '';
  return new BerthError('invalid_environment', `${source}: ${shown || 'invalid'}${more}`, {
    issues: issues.map(({ path, message, line, column }) => ({
      path,
      message,
      ...(line !== undefined ? { line } : {}),
      ...(column !== undefined ? { column } : {}),
    })),
  });
}

function checkUnique(spec: EnvironmentSpec): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const seen = new Set<string>();
  spec.services.forEach((service, i) => {
    if (seen.has(service.name))
      issues.push({ path: `services[${i}].name`, message: `duplicate service "${service.name}"` });
    seen.add(service.name);
  });
  const secrets = new Set<string>();
  spec.secrets.forEach((name, i) => {
    if (secrets.has(name))
      issues.push({ path: `secrets[${i}]`, message: `duplicate secret "${name}"` });
    if (Object.hasOwn(spec.env, name)) {
      issues.push({ path: `secrets[${i}]`, message: `"${name}" is both a variable and a secret` });
    }
    secrets.add(name);
  });
  return issues;
}

/** The refusal of a value that passes the key or nesting limit (see environment-json.ts). */
export function valueLimitRefusal(issue: ValueLimitIssue, source = 'environment'): BerthError {
  return refusal(source, [{ path: formatPath(issue.path), message: issue.message }]);
}

/**
 * The limits of environment-yaml.ts on a value that did not come from YAML (the API's JSON): at
 * most `maxEntries` keys and items and `maxDepth` levels, checked before the schema sees it. The
 * server checks a JSON body's spec on its worker first (environment-json.ts); this check is for
 * every other way a value arrives, and costs little on one the worker passed.
 */
function checkValueLimits(value: unknown, source: string): void {
  const issue = valueLimitIssue(value, ENVIRONMENT_YAML_LIMITS);
  if (issue) throw valueLimitRefusal(issue, source);
}

/** Validates a JSON value (the API's body) as an environment. */
export function parseEnvironmentSpec(value: unknown, source = 'environment'): EnvironmentSpec {
  checkValueLimits(value, source);
  const result = environmentSpecSchema.safeParse(value);
  if (!result.success) {
    throw refusal(
      source,
      issuesOf(result.error).map((i) => ({ path: formatPath(i.rawPath), message: i.message })),
    );
  }
  const unique = checkUnique(result.data);
  if (unique.length > 0) throw refusal(source, unique);
  return result.data;
}

/** Positions of offsets in `text`, 1-based (as the YAML library's line counter); one scan. */
function positionsIn(text: string): (offset: number) => { line: number; column: number } {
  let starts: number[] | undefined;
  return (offset) => {
    if (!starts) {
      starts = [0];
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
    }
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((starts[mid] ?? 0) <= offset) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, column: offset - (starts[low] ?? 0) + 1 };
  };
}

/** Where an issue is in the file: an unknown field at its key, anything else at its value. */
function locate(
  positionOf: (offset: number) => { line: number; column: number },
  positions: NodePositions | undefined,
  issue: RawIssue,
): { line: number; column: number } | undefined {
  if (!positions) return undefined;
  if (issue.unknownKey) {
    const { mapPath, key } = issue.unknownKey;
    const at = positions[JSON.stringify([...mapPath, key])]?.key;
    if (at !== undefined) return positionOf(at);
  }
  const path = issue.rawPath;
  for (let depth = path.length; depth >= 0; depth--) {
    const at = positions[JSON.stringify(path.slice(0, depth))]?.value;
    if (at !== undefined) return positionOf(at);
  }
  return undefined;
}

/** The spec from an environment file's composed value (see environment-yaml.ts), or the refusal. */
export function specFromComposed(
  text: string,
  composed: ComposeResult,
  source = 'environment file',
): EnvironmentSpec {
  if (!composed.ok) throw refusal(source, composed.issues);
  const { value, positions } = composed;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw refusal(source, [
      {
        path: '(root)',
        message: 'an environment file must be a mapping of fields',
        line: 1,
        column: 1,
      },
    ]);
  }
  const result = environmentSpecSchema.safeParse(value);
  if (!result.success) {
    const positionOf = positionsIn(text);
    const issues = issuesOf(result.error).map((issue) => ({
      path: formatPath(issue.rawPath),
      message: issue.message,
      ...locate(positionOf, positions, issue),
    }));
    throw refusal(source, issues);
  }
  const unique = checkUnique(result.data);
  if (unique.length > 0) throw refusal(source, unique);
  return result.data;
}

/**
 * Parses and validates the text of an environment file (YAML; JSON is YAML too), in place. The
 * server parses off its event loop instead (server/environment-yaml-worker.ts).
 */
export function parseEnvironmentFile(text: string, source = 'environment file'): EnvironmentSpec {
  return specFromComposed(
    text,
    composeEnvironmentYaml(yaml, text, ENVIRONMENT_YAML_LIMITS),
    source,
  );
}

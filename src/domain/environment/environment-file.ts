import { LineCounter, parseDocument, isMap, isNode, isScalar, type Document } from 'yaml';
import type { z } from 'zod';
import { BerthError } from '../../errors/berth-error.js';
import { environmentSpecSchema, type EnvironmentSpec } from './environment-spec.js';

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

/** Validates a JSON value (the API's body) as an environment. */
export function parseEnvironmentSpec(value: unknown, source = 'environment'): EnvironmentSpec {
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

/** Where an issue is in the file: an unknown field at its key, anything else at its value. */
function locate(
  doc: Document,
  lines: LineCounter,
  issue: RawIssue,
): { line: number; column: number } | undefined {
  if (issue.unknownKey) {
    const { mapPath, key } = issue.unknownKey;
    const map: unknown =
      mapPath.length === 0 ? doc.contents : doc.getIn(mapPath as unknown[], true);
    if (isMap(map)) {
      const pair = map.items.find((item) =>
        isScalar(item.key) ? String(item.key.value) === key : item.key === key,
      );
      if (pair && isNode(pair.key) && pair.key.range) {
        const pos = lines.linePos(pair.key.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
  }
  const path = issue.rawPath;
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = doc.getIn(path.slice(0, depth) as unknown[], true);
    if (isNode(node) && node.range) {
      const pos = lines.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return undefined;
}

/** Parses and validates the text of an environment file (YAML; JSON is YAML too). */
export function parseEnvironmentFile(text: string, source = 'environment file'): EnvironmentSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((error) => {
      const pos = error.linePos?.[0];
      return {
        path: '(yaml)',
        message: (error.message.split('\n')[0] ?? 'malformed YAML').replace(
          / at line \d+, column \d+:?$/,
          '',
        ),
        ...(pos ? { line: pos.line, column: pos.col } : {}),
      };
    });
    throw refusal(source, issues);
  }
  const value: unknown = doc.toJS();
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
    const issues = issuesOf(result.error).map((issue) => ({
      path: formatPath(issue.rawPath),
      message: issue.message,
      ...locate(doc, lines, issue),
    }));
    throw refusal(source, issues);
  }
  const unique = checkUnique(result.data);
  if (unique.length > 0) throw refusal(source, unique);
  return result.data;
}

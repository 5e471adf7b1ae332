import type * as Yaml from 'yaml';

/**
 * Reading the YAML text of an environment file into a plain value, within limits.
 *
 * Threat model. The text comes from anyone holding a token (`POST /v1/environments/validate`,
 * create, update) or from a file handed to the CLI, and is parsed by the server that also runs
 * `/health` and the egress proxies. A hostile text tries to make the parse cost far more than
 * its size: many keys (the YAML library's own duplicate-key check is quadratic), deep nesting
 * (the composer recurses), aliases that expand exponentially ("billion laughs"), or simply a
 * large body. Every one of these is refused with the reason (and the field path where there is
 * one) before it costs much:
 * - the size is checked first, without parsing;
 * - a first pass over the lexer's tokens counts entries (keys and sequence items), aliases and
 *   flow nesting and stops at the first limit passed, so a file of a million items costs no more
 *   than one of `maxEntries`;
 * - duplicate keys are found with one set per mapping (linear), and compared as the keys the
 *   value will have (`1` and `"1"` are the same key);
 * - nesting deeper than `maxDepth` is refused (and a composer stack overflow reads as too deep);
 * - aliases are counted, and their expansion is limited by the library's `maxAliasCount`.
 * On the server the parse runs on a worker thread (environment-yaml-worker.ts) so even a file
 * within the limits never holds the event loop; the CLI parses in place.
 *
 * `composeEnvironmentYaml` is self-contained on purpose: it uses nothing but its arguments (the
 * `yaml` module is one), so the worker runs its very source. Keep it that way: no module-level
 * names, no imports used at run time, inside it.
 */

export interface EnvironmentYamlLimits {
  /** The largest text, in UTF-8 bytes. */
  maxBytes: number;
  /** Mapping keys plus sequence items, in the whole file. */
  maxEntries: number;
  /** Collections inside collections. */
  maxDepth: number;
  /** Alias nodes (`*name`) in the file. */
  maxAliases: number;
}

export const ENVIRONMENT_YAML_LIMITS: EnvironmentYamlLimits = {
  maxBytes: 512 * 1024,
  maxEntries: 2_000,
  maxDepth: 32,
  maxAliases: 100,
};

/** A refusal found while reading the text: `(yaml)` or a field path, and an offset for the position. */
export interface ComposeIssue {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Where each node of the value starts (offsets), by `JSON.stringify(path)`: for locating refusals. */
export type NodePositions = Record<string, { key?: number; value?: number }>;

export type ComposeResult =
  { ok: true; value: unknown; positions?: NodePositions } | { ok: false; issues: ComposeIssue[] };

/**
 * The text's value, or why it is refused. With `withPositions`, also where each node starts (to
 * locate the schema's refusals; the worker leaves them out unless asked, they cost a copy).
 */
export function composeEnvironmentYaml(
  yaml: typeof Yaml,
  text: string,
  limits: EnvironmentYamlLimits,
  withPositions = true,
): ComposeResult {
  const refuse = (path: string, message: string, offset?: number): ComposeResult => {
    if (offset === undefined) return { ok: false, issues: [{ path, message }] };
    let line = 1;
    let lineStart = 0;
    for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
      line++;
      lineStart = i + 1;
    }
    return { ok: false, issues: [{ path, message, line, column: offset - lineStart + 1 }] };
  };

  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes)
    return refuse('(root)', `the file is ${bytes} bytes; at most ${limits.maxBytes} are accepted`);

  // Pass 1: count on the lexer's tokens (cheap, linear) and stop at the first limit passed.
  let entries = 0;
  let aliases = 0;
  let flowDepth = 0;
  let offset = 0;
  for (const token of new yaml.Lexer().lex(text)) {
    const type = yaml.CST.tokenType(token);
    if (
      type === 'map-value-ind' ||
      type === 'seq-item-ind' ||
      type === 'explicit-key-ind' ||
      type === 'comma'
    ) {
      if (++entries > limits.maxEntries)
        return refuse(
          '(root)',
          `more than ${limits.maxEntries} keys and sequence items in the file`,
          offset,
        );
    } else if (type === 'flow-map-start' || type === 'flow-seq-start') {
      if (++flowDepth > limits.maxDepth)
        return refuse('(root)', `nested more than ${limits.maxDepth} levels deep`, offset);
    } else if (type === 'flow-map-end' || type === 'flow-seq-end') {
      flowDepth = Math.max(0, flowDepth - 1);
    } else if (type === 'alias') {
      if (++aliases > limits.maxAliases)
        return refuse('(root)', `more than ${limits.maxAliases} aliases in the file`, offset);
    }
    // The lexer's control tokens (document, flow-error end, scalar) are not part of the text.
    if (token !== '\x02' && token !== '\x18' && token !== '\x1f') offset += token.length;
  }

  // Pass 2: the library's parse, without its quadratic duplicate-key check (done below).
  const lineCounter = new yaml.LineCounter();
  let doc: Yaml.Document.Parsed;
  try {
    doc = yaml.parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: false });
  } catch (error) {
    if (error instanceof RangeError)
      return refuse('(root)', `nested more than ${limits.maxDepth} levels deep`);
    throw error;
  }
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((error) => {
        const pos = error.linePos?.[0];
        // The composer recursing out of stack: nesting far deeper than the limit.
        const exhausted = error.code === 'RESOURCE_EXHAUSTION';
        return {
          path: exhausted ? '(root)' : '(yaml)',
          message: exhausted
            ? `nested more than ${limits.maxDepth} levels deep`
            : (error.message.split('\n')[0] ?? 'malformed YAML').replace(
                / at line \d+, column \d+:?$/,
                '',
              ),
          ...(pos ? { line: pos.line, column: pos.col } : {}),
        };
      }),
    };
  }

  // Pass 3: one walk over the nodes: depth, duplicate keys (a set per mapping), positions.
  const positions: NodePositions = {};
  const pathText = (path: readonly (string | number)[]): string => {
    let out = '';
    for (const part of path) {
      if (typeof part === 'number') out += `[${part}]`;
      else out += out === '' ? part : `.${part}`;
    }
    return out === '' ? '(root)' : out;
  };
  // An explicit stack (not recursion): the walk's own depth is never the limit.
  const stack: Array<{ node: unknown; path: (string | number)[]; depth: number }> = [
    { node: doc.contents, path: [], depth: 0 },
  ];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { node, path, depth } = next;
    if (yaml.isNode(node) && node.range) {
      const key = JSON.stringify(path);
      positions[key] = { ...positions[key], value: node.range[0] };
    }
    if (yaml.isMap(node)) {
      if (depth >= limits.maxDepth)
        return refuse(
          pathText(path),
          `nested more than ${limits.maxDepth} levels deep`,
          node.range?.[0],
        );
      const seen = new Set<string>();
      for (const pair of node.items) {
        const keyNode = pair.key;
        const keyStart = yaml.isNode(keyNode) ? keyNode.range?.[0] : undefined;
        if (
          !yaml.isScalar(keyNode) ||
          (keyNode.value !== null && typeof keyNode.value === 'object')
        )
          return refuse(
            pathText(path),
            'a key must be a plain value, not a collection or alias',
            keyStart,
          );
        const name = String(keyNode.value);
        const childPath = [...path, name];
        if (seen.has(name)) return refuse(pathText(childPath), `duplicate key "${name}"`, keyStart);
        seen.add(name);
        if (keyStart !== undefined) positions[JSON.stringify(childPath)] = { key: keyStart };
        stack.push({ node: pair.value, path: childPath, depth: depth + 1 });
      }
    } else if (yaml.isSeq(node)) {
      if (depth >= limits.maxDepth)
        return refuse(
          pathText(path),
          `nested more than ${limits.maxDepth} levels deep`,
          node.range?.[0],
        );
      node.items.forEach((item, i) =>
        stack.push({ node: item, path: [...path, i], depth: depth + 1 }),
      );
    }
  }

  try {
    const value: unknown = doc.toJS({ maxAliasCount: limits.maxAliases });
    return withPositions ? { ok: true, value, positions } : { ok: true, value };
  } catch (error) {
    if (error instanceof ReferenceError || error instanceof RangeError)
      return refuse('(root)', `aliases expand too much: ${error.message}`);
    throw error;
  }
}

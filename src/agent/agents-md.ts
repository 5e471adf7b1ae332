import { posix } from 'node:path';
import { BerthError } from '../errors/berth-error.js';
import type { AgentSandbox } from './agent-sandbox.js';
import { cutMiddle } from './cut-middle.js';

/** What one AGENTS.md file may take of the context. */
export const AGENTS_MD_MAX_CHARS = 32_000;
const MAX_FILES = 200;

export interface AgentsMdFile {
  /** Its directory, relative to the repository root (`.` for the root). */
  dir: string;
  text: string;
}

const FIND_SCRIPT = `find . \\( -name .git -o -name node_modules \\) -prune -o -name AGENTS.md -type f -print 2>/dev/null | head -n ${MAX_FILES}`;

/**
 * The repository's AGENTS.md files. The root one goes into the system prompt; a nested one is
 * shown when the agent first works in its directory or below (a file it patches, a shell workdir,
 * a path in a command), outer ones before inner ones, and the system prompt says that nearer
 * files win where they disagree.
 */
export class AgentsMd {
  private readonly shown = new Set<string>();

  private constructor(
    private readonly sandbox: AgentSandbox,
    /** Directories (relative) holding an AGENTS.md, the root excluded. */
    readonly nestedDirs: string[],
    readonly root: AgentsMdFile | undefined,
  ) {
    if (root) this.shown.add('.');
  }

  static async discover(sandbox: AgentSandbox, signal?: AbortSignal): Promise<AgentsMd> {
    const found = await sandbox.exec(['bash', '-c', FIND_SCRIPT], {
      timeoutMs: 30_000,
      maxOutputBytes: 64 * 1024,
      ...(signal ? { signal } : {}),
    });
    const dirs = found.output
      .split('\n')
      .filter((line) => line.endsWith('/AGENTS.md'))
      .map((line) => posix.normalize(posix.dirname(line)))
      .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
    const root = dirs.includes('.') ? await read(sandbox, '.') : undefined;
    return new AgentsMd(
      sandbox,
      dirs.filter((d) => d !== '.'),
      root,
    );
  }

  /**
   * The AGENTS.md files not shown yet that govern the given paths (relative to the root), outer
   * ones first. Each is returned once.
   */
  async forPaths(paths: string[]): Promise<AgentsMdFile[]> {
    const wanted = new Set<string>();
    for (const path of paths) {
      const normal = posix.normalize(path).replace(/\/+$/, '');
      if (normal.startsWith('..') || posix.isAbsolute(normal)) continue;
      for (const dir of this.nestedDirs) {
        if (!this.shown.has(dir) && (normal === dir || normal.startsWith(`${dir}/`)))
          wanted.add(dir);
      }
    }
    const files: AgentsMdFile[] = [];
    for (const dir of this.nestedDirs.filter((d) => wanted.has(d))) {
      this.shown.add(dir);
      const file = await read(this.sandbox, dir);
      if (file) files.push(file);
    }
    return files;
  }
}

/** An AGENTS.md larger than this is not read (its place in the prompt says so). */
export const AGENTS_MD_MAX_BYTES = 1024 * 1024;

async function read(sandbox: AgentSandbox, dir: string): Promise<AgentsMdFile | undefined> {
  const path = posix.join(sandbox.workdir, dir, 'AGENTS.md');
  try {
    const text = (await sandbox.readFile(path, { maxBytes: AGENTS_MD_MAX_BYTES })).toString('utf8');
    return { dir, text: cutMiddle(text, AGENTS_MD_MAX_CHARS) };
  } catch (error) {
    if (error instanceof BerthError && error.code === 'not_found') return undefined;
    if (error instanceof BerthError && error.code === 'payload_too_large') {
      return {
        dir,
        text: `[this AGENTS.md is larger than ${AGENTS_MD_MAX_BYTES} bytes and was not read]`,
      };
    }
    throw error;
  }
}

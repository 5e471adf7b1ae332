import { isAbsolute } from 'node:path';

/**
 * Repository locations a user may give. A location is never allowed to look like a command-line
 * option or to carry characters that could become another shell word or git argument; callers
 * still pass it after `--`.
 */
export type RepositoryKind = 'https' | 'http' | 'ssh' | 'git' | 'local';

export type RepositoryUrlResult =
  { ok: true; kind: RepositoryKind } | { ok: false; reason: string };

/** `user@host:path` (ssh); the host cannot start with "-" (ssh would read it as an option). */
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.][A-Za-z0-9.-]*:[^\s]+$/;

export function classifyRepositoryUrl(url: string): RepositoryUrlResult {
  if (url.trim() === '') return { ok: false, reason: 'the repository URL is empty' };
  if (url.startsWith('-')) {
    return {
      ok: false,
      reason: 'the repository URL starts with "-" and would be read as a git option',
    };
  }
  if (/[\s\x00-\x1f\x7f]/.test(url)) {
    return { ok: false, reason: 'the repository URL contains whitespace or control characters' };
  }
  if (url.startsWith('ext::') || /^[a-z+]+::/i.test(url)) {
    return { ok: false, reason: 'git remote helpers ("transport::address") are not allowed' };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (scheme === 'https' || scheme === 'http' || scheme === 'ssh' || scheme === 'git') {
      try {
        const parsed = new URL(url);
        if (parsed.hostname === '') return { ok: false, reason: 'the repository URL has no host' };
        if (parsed.hostname.startsWith('-')) {
          return { ok: false, reason: 'the repository host starts with "-"' };
        }
      } catch {
        return { ok: false, reason: 'the repository URL is not a valid URL' };
      }
      return { ok: true, kind: scheme };
    }
    if (scheme === 'file') return { ok: true, kind: 'local' };
    return {
      ok: false,
      reason: `the URL scheme "${scheme}" is not supported (use https, ssh, git or a local path)`,
    };
  }
  if (SCP_LIKE.test(url)) return { ok: true, kind: 'ssh' };
  if (isAbsolute(url)) return { ok: true, kind: 'local' };
  return {
    ok: false,
    reason:
      'the repository must be an https, ssh or git URL, user@host:path, or an absolute local path',
  };
}

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

/** `scheme://` at the start of a URL. */
const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

interface Userinfo {
  scheme: string | undefined;
  /** Where the user information starts and ends (the "@" excluded). */
  start: number;
  end: number;
  user: string;
  password: string | undefined;
}

/** The user information of a URL (`user:password@`), located in the text; undefined without. */
function userinfoOf(url: string): Userinfo | undefined {
  const scheme = SCHEME.exec(url);
  if (scheme) {
    const start = scheme[0].length;
    // The authority ends at the first "/", "?", "#" or "\\" (a "/" for special schemes).
    const rest = url.slice(start);
    const stop = rest.search(/[/?#\\]/);
    const authority = stop === -1 ? rest : rest.slice(0, stop);
    const at = authority.lastIndexOf('@');
    if (at === -1) return undefined;
    const info = authority.slice(0, at);
    const colon = info.indexOf(':');
    return {
      scheme: scheme[1]?.toLowerCase(),
      start,
      end: start + at,
      user: colon === -1 ? info : info.slice(0, colon),
      password: colon === -1 ? undefined : info.slice(colon + 1),
    };
  }
  // scp-like `user@host:path`: a ":" before the first "@" (and no "/") is a password.
  const scp = /^([^/@]*)@/.exec(url);
  if (!scp?.[1]) return undefined;
  const info = scp[1];
  const colon = info.indexOf(':');
  return {
    scheme: undefined,
    start: 0,
    end: info.length,
    user: colon === -1 ? info : info.slice(0, colon),
    password: colon === -1 ? undefined : info.slice(colon + 1),
  };
}

/** True when the user information is a credential rather than an ssh login name. */
function isCredential(info: Userinfo): boolean {
  // Over ssh (and scp-like) the user is the login (`git@…`); only a password is a secret.
  if (info.scheme === undefined || info.scheme === 'ssh') return info.password !== undefined;
  // Anywhere else a user name alone can be the token (`https://TOKEN@host/…`).
  return info.user !== '' || info.password !== undefined;
}

/**
 * Why a repository URL may not be stored because it carries a credential (`https://bot:TOKEN@…`,
 * `https://TOKEN@…`, `ssh://git:PASSWORD@…`, `git:PASSWORD@host:path`), or undefined when it
 * carries none. The reason never repeats the URL. Credentials belong in a secret named by
 * `repository.credentials`: a URL is stored as it is and shown to everyone who can see the
 * environment.
 */
export function repositoryUrlCredentialProblem(url: string): string | undefined {
  const info = userinfoOf(url);
  if (info === undefined || !isCredential(info)) return undefined;
  if (info.scheme === undefined || info.scheme === 'ssh') {
    return 'the URL carries a password (before "@"), which would be stored and shown to everyone who can see the environment: keep only the user in the URL (ssh://git@host/path or git@host:path) and give a private key as a secret under repository.credentials (see "Private repositories" in docs/environments.md)';
  }
  return 'the URL carries credentials (a user name or token before "@"), which would be stored and shown to everyone who can see the environment: give the URL without them and the token as a secret under repository.credentials (see "Private repositories" in docs/environments.md)';
}

/**
 * The URL with any credential in it replaced by `***`, for showing (an environment stored before
 * credentials in URLs were refused): `https://***@host/…`, `ssh://git:***@host/…`.
 */
export function maskRepositoryUrl(url: string): string {
  const info = userinfoOf(url);
  if (info === undefined || !isCredential(info)) return url;
  const kept = info.scheme === undefined || info.scheme === 'ssh' ? `${info.user}:***` : '***';
  return url.slice(0, info.start) + kept + url.slice(info.end);
}

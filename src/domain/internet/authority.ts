import { normaliseHostName } from './host-name.js';

/**
 * The authority (`host:port`) of a CONNECT target, an absolute URL or a Host header, read
 * strictly: no userinfo, no white space or control characters, a port of decimal digits only
 * (1-65535, no sign, no leading zero), a DNS name (IP literals are refused by the name rules).
 */

export type AuthorityResult =
  { ok: true; host: string; port: number } | { ok: false; reason: string };

export interface AuthorityOptions {
  /** Used when the authority has no port; when absent a port is required (CONNECT). */
  defaultPort?: number;
}

export function parseAuthority(raw: string, options: AuthorityOptions = {}): AuthorityResult {
  if (raw.length === 0) return { ok: false, reason: 'empty authority' };
  if (raw.length > 300) return { ok: false, reason: 'authority too long' };
  if (/[\x00-\x20\x7f-\xff]/.test(raw))
    return { ok: false, reason: 'authority contains white space or control characters' };
  if (raw.includes('@')) return { ok: false, reason: 'userinfo is not allowed in the authority' };
  if (raw.startsWith('[')) return { ok: false, reason: 'IP literals are not allowed' };
  const colon = raw.lastIndexOf(':');
  let hostText = raw;
  let port: number | undefined;
  if (colon !== -1) {
    hostText = raw.slice(0, colon);
    const portText = raw.slice(colon + 1);
    if (!/^[1-9][0-9]{0,4}$/.test(portText))
      return { ok: false, reason: `invalid port "${portText}"` };
    port = Number(portText);
    if (port > 65535) return { ok: false, reason: `invalid port "${portText}"` };
  } else if (options.defaultPort === undefined) {
    return { ok: false, reason: 'the target needs an explicit port (host:port)' };
  } else {
    port = options.defaultPort;
  }
  if (hostText.includes(':')) return { ok: false, reason: 'IP literals are not allowed' };
  const host = normaliseHostName(hostText);
  if (!host.ok) return { ok: false, reason: host.reason };
  return { ok: true, host: host.name, port };
}

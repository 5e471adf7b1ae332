import type { InternetPolicy } from '../environment/environment-spec.js';
import { normaliseHostName } from './host-name.js';

/**
 * The headers the egress proxy sets from `internet.credentials`, with the secrets' values put
 * into their formats. Pure. The result holds secret values: it goes to the proxy (in the
 * orchestrator's process) and nowhere else, never into a log, an event or the sandbox.
 */

/** A header the proxy sets on intercepted HTTPS requests to one host. */
export interface InjectedCredential {
  /** The normalised host name. */
  host: string;
  header: string;
  /** The header's whole value (the format with the secret in it). Never logged. */
  value: string;
}

export interface InjectedCredentials {
  credentials: InjectedCredential[];
  /** `host (header): why` for credentials that could not be made (a secret that is not set). */
  skipped: string[];
}

export function injectedCredentials(
  internet: Pick<InternetPolicy, 'credentials'>,
  secrets: Readonly<Record<string, string>>,
): InjectedCredentials {
  const out: InjectedCredentials = { credentials: [], skipped: [] };
  for (const credential of internet.credentials ?? []) {
    const host = normaliseHostName(credential.host);
    const value = secrets[credential.secret];
    if (!host.ok) continue;
    if (value === undefined || value === '') {
      out.skipped.push(
        `${host.name} (${credential.header}): the secret ${credential.secret} is not set`,
      );
      continue;
    }
    out.credentials.push({
      host: host.name,
      header: credential.header,
      value: credential.format.replace('{value}', () => value),
    });
  }
  return out;
}

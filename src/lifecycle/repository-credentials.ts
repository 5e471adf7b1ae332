import type { EnvironmentSpec } from '../domain/environment/environment-spec.js';
import { BerthError } from '../errors/berth-error.js';
import type { GitCredentials } from './checkout.js';

/** The user name sent with a token when the environment names none (what GitHub expects). */
export const DEFAULT_GIT_USERNAME = 'x-access-token';

/**
 * The environment's git credentials (`repository.credentials`: one of its secrets and a user
 * name), for the orchestrator's own git work: the checkout (through the one-shot credential
 * helper, see checkout.ts: inside the sandbox only for the first clone from the base image, on
 * the host for every fetch after a setup script ran), the `task pr` push and the GitHub API. For an ssh repository the
 * secret is the private key and `knownHosts` the pinned host keys (the host-side fetch in
 * checkout.ts).
 *
 * Threat model: the value is a secret of the environment; it goes only to the environment's own
 * repository. A task that replaces the repository (`berth run --repo`) gets none, so a user cannot
 * send an environment's token to a server of their choosing.
 */
export function repositoryCredentials(
  spec: EnvironmentSpec,
  secrets: Readonly<Record<string, string>>,
  repository?: string | null,
): GitCredentials | undefined {
  const credentials = spec.repository.credentials;
  if (credentials === undefined) return undefined;
  if (repository !== undefined && repository !== null && repository !== spec.repository.url)
    return undefined;
  const password = secrets[credentials.secret];
  if (password === undefined || password === '') {
    throw new BerthError(
      'invalid_input',
      `the secret "${credentials.secret}" named by repository.credentials has no value: set it with berth env update ${spec.name} --file FILE --secret ${credentials.secret}=VALUE`,
      { environment: spec.name, secret: credentials.secret },
    );
  }
  return {
    username: credentials.username ?? DEFAULT_GIT_USERNAME,
    password,
    ...(credentials.knownHosts !== undefined ? { knownHosts: credentials.knownHosts } : {}),
  };
}

import { ApiClient } from '../cli/api-client.js';
import { BerthError } from '../errors/berth-error.js';
import type { ServerStatus } from '../server/server-status.js';
import type { DoctorCheck } from './doctor.js';

/**
 * `berth doctor`'s checks of the server the person uses (`--url`/`--token`, `BERTH_URL`/
 * `BERTH_TOKEN`, else the login file): reachable, the token valid, its version against this
 * CLI's, its data directory and the engine's free disk against its floor (those two need an
 * admin token). Each failure says the fix.
 */
export async function serverChecks(
  login: { url: string; token: string | undefined; source: string } | undefined,
  cliVersion: string,
): Promise<DoctorCheck[]> {
  if (login === undefined) {
    return [
      {
        name: 'server',
        ok: true,
        detail: 'not logged in to a server: only this machine was checked',
        fix: 'berth login URL (or --url and --token) to check the server you use',
      },
    ];
  }
  const checks: DoctorCheck[] = [];
  let client: ApiClient;
  try {
    client = new ApiClient(login.url, login.token);
  } catch (error) {
    return [
      {
        name: 'server',
        ok: false,
        detail: error instanceof Error ? error.message : String(error),
        fix: `berth login URL with the server's http:// or https:// URL (${login.source} has it wrong)`,
      },
    ];
  }
  let version: string;
  try {
    ({ version } = await client.call((api) => api.GET('/health')));
  } catch (error) {
    return [
      {
        name: 'server',
        ok: false,
        detail: `${login.url} (from ${login.source}) does not answer: ${error instanceof Error ? error.message : String(error)}`,
        fix: `start it there (berth serve), or log in to the server you use: berth login URL`,
      },
    ];
  }
  checks.push({
    name: 'server',
    ok: true,
    detail: `${login.url} (from ${login.source}) answers, version ${version}${version === cliVersion ? '' : ` (this CLI is ${cliVersion}: update the older of the two if a command misbehaves)`}`,
  });
  if (login.token === undefined) {
    checks.push({
      name: 'token',
      ok: false,
      detail: 'no token given',
      fix: 'berth login URL with a token (an admin creates one: berth token create NAME)',
    });
    return checks;
  }
  let whoami: { name: string; admin: boolean };
  try {
    whoami = await client.call((api) => api.GET('/v1/whoami'));
  } catch (error) {
    const refused = error instanceof BerthError && error.code === 'unauthorized';
    checks.push({
      name: 'token',
      ok: false,
      detail: refused
        ? `the server does not accept the token from ${login.source} (unknown or revoked)`
        : `could not check the token: ${error instanceof Error ? error.message : String(error)}`,
      fix: 'berth login URL with a live token (an admin creates one: berth token create NAME)',
    });
    return checks;
  }
  checks.push({
    name: 'token',
    ok: true,
    detail: `valid: token "${whoami.name}"${whoami.admin ? ' (admin)' : ''}`,
  });
  const status: ServerStatus | undefined = await client
    .call((api) => api.GET('/v1/server'))
    .catch(() => undefined);
  if (status === undefined) {
    checks.push({
      name: 'server data directory',
      ok: true,
      detail: 'this server does not report it (an older version)',
    });
    return checks;
  }
  if (status.adminOnly) {
    checks.push({
      name: 'server data directory',
      ok: true,
      detail: 'not checked: only an admin token sees the server’s data directory and free disk',
    });
    return checks;
  }
  checks.push({
    name: 'server data directory',
    ok: status.dataDirWritable === true,
    detail: `${status.dataDir ?? '?'} ${status.dataDirWritable === true ? 'is writable' : 'is not writable by the server'}`,
    ...(status.dataDirWritable === true
      ? {}
      : {
          fix: `give the server's user write access to ${status.dataDir ?? 'it'}, or restart it with --data-dir DIR`,
        }),
  });
  const disk = status.disk;
  if (disk === null || disk.freeMb === null) {
    checks.push({
      name: 'server free disk',
      ok: true,
      detail: `not known (${disk === null ? 'the engine does not answer' : `${disk.rootDir} is not on the server's machine`})`,
    });
    return checks;
  }
  const enough = disk.freeMb >= disk.minFreeMb;
  checks.push({
    name: 'server free disk',
    ok: enough,
    detail: `${disk.freeMb} MB free in ${disk.rootDir} (where the Docker engine keeps its data); the floor is ${disk.minFreeMb} MB (BERTH_MIN_FREE_DISK_MB)${enough ? '' : ': attempts and cache builds are refused'}`,
    ...(enough
      ? {}
      : {
          fix: `free space in ${disk.rootDir} (berth env cache reset ENV, docker image prune), or lower BERTH_MIN_FREE_DISK_MB on the server`,
        }),
  });
  return checks;
}

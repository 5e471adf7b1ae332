import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { runDoctor, type DoctorCheck } from '../../doctor/doctor.js';
import { serverChecks } from '../../doctor/server-checks.js';
import { clientEnv } from '../../config/config.js';
import { loginPath, readLogin } from '../login-file.js';
import { BERTH_VERSION } from '../../version.js';

/** The server the person uses, as every other command finds it: flags, variables, login file. */
function serverLogin(
  flags: { url?: string; token?: string },
  configDir: string,
): { url: string; token: string | undefined; source: string } | undefined | DoctorCheck {
  const env = clientEnv();
  if (flags.url !== undefined)
    return { url: flags.url, token: flags.token ?? env.token, source: '--url' };
  if (env.url !== undefined)
    return { url: env.url, token: flags.token ?? env.token, source: 'BERTH_URL' };
  try {
    const login = readLogin(configDir);
    if (login === undefined) return undefined;
    return {
      url: login.url,
      token: flags.token ?? env.token ?? login.token,
      source: loginPath(configDir),
    };
  } catch (error) {
    return {
      name: 'server',
      ok: false,
      detail: error instanceof Error ? error.message : String(error),
      fix: 'berth login URL',
    };
  }
}

export function registerDoctorCommand(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description(
      'check this machine (the Docker engine, the images, the data directory, free disk) and the server you are logged in to',
    )
    .option('--data-dir <dir>', 'data directory to check')
    .option('--url <url>', 'server URL (else BERTH_URL, else the login file)')
    .option('--token <token>', 'API token (else BERTH_TOKEN, else the login file)')
    .option(
      '--image <ref>',
      "check this image's package registries (repeatable; default: the base images and this instance's cache images)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option(
      '--no-registries',
      "skip the egress proxy's reach to the images' package registries (no DNS or connection)",
    )
    .option('--json', 'print JSON')
    .action(
      async (options: {
        dataDir?: string;
        url?: string;
        token?: string;
        json?: boolean;
        image?: string[];
        registries: boolean;
      }) => {
        const config = ctx.config({ dataDir: options.dataDir });
        const login = serverLogin(options, config.configDir);
        const checks = [
          ...(await runDoctor(config, {
            registries: options.registries,
            ...(options.image !== undefined ? { images: options.image } : {}),
          })),
          ...(login !== undefined && 'ok' in login
            ? [login]
            : await serverChecks(login, BERTH_VERSION)),
        ];
        const ok = checks.every((c) => c.ok);
        if (options.json) {
          ctx.json({ ok, checks });
        } else {
          for (const check of checks) {
            ctx.out(`${check.ok ? 'ok     ' : 'MISSING'} ${check.name}: ${check.detail}`);
            if (check.fix) ctx.out(`        ${check.ok ? 'hint' : 'fix'}: ${check.fix}`);
          }
          ctx.out(
            ok ? 'everything Berth needs is here' : 'some things are missing (see "fix" above)',
          );
        }
        if (!ok) ctx.exitCode = 1;
      },
    );
}

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { importDevcontainer } from '../../domain/environment/devcontainer-import.js';
import { repositoryUrlCredentialProblem } from '../../domain/environment/repository-url.js';
import { BerthError } from '../../errors/berth-error.js';

/**
 * `berth env import --devcontainer FILE --name NAME [--write FILE]` (issue 16 item 3): prints (or
 * writes) an environment file made from a devcontainer.json, and lists on stderr what it could
 * not map. Runs without a server. The repository is the clone's remote `origin` when the file
 * sits in one (unless it carries credentials), or `--repository URL`.
 */

function git(dir: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('git', ['-C', dir, ...args], { timeout: 5_000 }, (error, stdout) =>
      resolve(error ? undefined : stdout.trim()),
    );
  });
}

export function registerEnvImportCommand(env: Command, ctx: CliContext): void {
  env
    .command('import')
    .description('make an environment file from a devcontainer.json (no server needed)')
    .requiredOption('--devcontainer <file>', 'the devcontainer file (JSON with comments)')
    .requiredOption('--name <name>', "the environment's name")
    .option('--write <file>', 'write the environment file here instead of printing it')
    .option('--repository <url>', "the repository's URL (default: the clone's remote origin)")
    .action(
      async (options: {
        devcontainer: string;
        name: string;
        write?: string;
        repository?: string;
      }) => {
        const text = ctx.readFile(options.devcontainer);
        const dir = dirname(options.devcontainer);
        let repository = options.repository;
        if (repository === undefined) {
          const origin = await git(dir, ['remote', 'get-url', 'origin']);
          if (origin && repositoryUrlCredentialProblem(origin) === undefined) repository = origin;
        }
        const prefix = await git(dir, ['rev-parse', '--show-prefix']);
        const folder = prefix === undefined ? undefined : prefix.replace(/\/$/, '') || '.';
        const result = importDevcontainer(text, {
          name: options.name,
          source: options.devcontainer,
          repository,
          folder,
        });
        for (const warning of result.warnings)
          ctx.err(`warning: ${options.devcontainer}: ${warning}`);
        if (options.write === undefined) return ctx.out(result.yaml.trimEnd());
        try {
          writeFileSync(options.write, result.yaml, { flag: 'wx' });
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          throw new BerthError(
            'invalid_input',
            code === 'EEXIST'
              ? `${options.write} exists; remove it or give another --write file`
              : `cannot write ${options.write}: ${(error as Error).message}`,
          );
        }
        ctx.out(
          `wrote ${options.write} (${result.warnings.length} warning${result.warnings.length === 1 ? '' : 's'}); then: berth env create --file ${options.write}`,
        );
      },
    );
}

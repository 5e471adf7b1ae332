import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { runDoctor } from '../../doctor/doctor.js';

export function registerDoctorCommand(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description('check the Docker engine, the images and the data directory')
    .option('--data-dir <dir>', 'data directory to check')
    .option('--json', 'print JSON')
    .action(async (options: { dataDir?: string; json?: boolean }) => {
      const checks = await runDoctor(ctx.config({ dataDir: options.dataDir }));
      const ok = checks.every((c) => c.ok);
      if (options.json) {
        ctx.json({ ok, checks });
      } else {
        for (const check of checks) {
          ctx.out(`${check.ok ? 'ok     ' : 'MISSING'} ${check.name}: ${check.detail}`);
          if (!check.ok && check.fix) ctx.out(`        fix: ${check.fix}`);
        }
        ctx.out(
          ok ? 'everything Berth needs is here' : 'some things are missing (see "fix" above)',
        );
      }
      if (!ok) ctx.exitCode = 1;
    });
}

import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { BerthError } from '../../errors/berth-error.js';
import { agentLimitsFrom } from '../agent-options.js';
import { agentLimitsSchema } from '../../agent/agent-limits-schema.js';
import { inertJson } from '../terminal-text.js';
import { RAW_FLAG, RAW_HELP, REQUIRE_VERIFY_FLAG } from './task-command.js';

const LIMIT_FLAGS: Record<string, string> = {
  maxTurns: '--max-turns',
  maxTokens: '--max-tokens',
  wallTimeMs: '--max-time-ms',
};

/** The limit flags, held to the rules a task's limits meet through the API (agentLimitsSchema). */
function checkedAgentLimits(options: RunOptions): ReturnType<typeof agentLimitsFrom> {
  const limits = agentLimitsFrom(options);
  const parsed = agentLimitsSchema.safeParse(limits);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? '');
    throw new BerthError(
      'invalid_input',
      `${LIMIT_FLAGS[key] ?? key}: ${issue?.message ?? 'not a valid limit'} (got ${String(limits[key as keyof typeof limits])})`,
    );
  }
  return limits;
}

interface RunOptions {
  envFile: string;
  repo?: string;
  branch?: string;
  sha?: string;
  attempts: string;
  command?: string;
  requireVerify?: boolean;
  json?: boolean;
  dataDir?: string;
  modelBaseUrl?: string;
  model?: string;
  maxTurns?: string;
  maxTokens?: string;
  maxTimeMs?: string;
}

export function registerRunCommand(program: Command, ctx: CliContext): void {
  program
    .command('run')
    .description('run one task end to end on this machine, without a server (for CI and scripts)')
    .requiredOption(
      '--env-file <file>',
      'environment file (YAML); secrets it declares are read from variables of the same name',
    )
    .option(
      '--repo <url-or-path>',
      "use this repository instead of the file's (or when the file names none)",
    )
    .option('--branch <branch>', 'check out this branch')
    .option('--sha <sha>', 'check out this commit')
    .option('--attempts <n>', 'independent attempts', '1')
    .option('--command <command>', 'run this command as the agent phase')
    .option(
      '--data-dir <dir>',
      'where the embedded store and cache records live (else BERTH_DATA_DIR, else the XDG data home)',
    )
    .option(
      '--model-base-url <url>',
      'OpenAI-compatible API for the agent (else BERTH_MODEL_BASE_URL; key: BERTH_MODEL_API_KEY)',
    )
    .option('--model <name>', 'model name (else BERTH_MODEL)')
    .option('--max-turns <n>', 'at most this many model turns per attempt')
    .option('--max-tokens <n>', 'at most this many model tokens per attempt')
    .option('--max-time-ms <ms>', "at most this long for the agent's work per attempt")
    .option(
      REQUIRE_VERIFY_FLAG,
      "exit code 3 when an attempt's verify failed (else 0 if every attempt succeeded); the file's verifyRequired: true does the same",
    )
    .option('--json', 'print the result as one JSON object')
    .option(RAW_FLAG, RAW_HELP)
    .argument('[prompt]', 'what the agent is asked to do')
    .action(async (prompt: string | undefined, options: RunOptions) => {
      const attempts = Number(options.attempts);
      const attemptsRefused = (max: string) =>
        new BerthError(
          'invalid_input',
          `--attempts must be a whole number from 1 to ${max} (got ${options.attempts})`,
        );
      if (!/^[0-9]{1,6}$/.test(options.attempts) || attempts < 1)
        throw attemptsRefused('BERTH_MAX_ATTEMPTS (8 unless set)');
      if (options.branch !== undefined && options.sha !== undefined) {
        throw new BerthError('invalid_input', 'give either --branch or --sha, not both');
      }
      const agentLimits = checkedAgentLimits(options);
      const config = ctx.config({
        dataDir: options.dataDir,
        modelBaseUrl: options.modelBaseUrl,
        model: options.model,
      });
      if (attempts > config.maxAttempts)
        throw attemptsRefused(`${config.maxAttempts} (BERTH_MAX_ATTEMPTS)`);
      const { runLocal } = await import('../../lifecycle/run-local.js');
      const hasCommand = options.command !== undefined && options.command.trim() !== '';
      const { modelClientFromConfig } =
        await import('../../adapters/model/model-client-from-config.js');
      // A prompt needs a model; a command does not (the model settings are then not needed).
      const model =
        !hasCommand && config.model.baseUrl !== undefined
          ? modelClientFromConfig(config.model)
          : undefined;
      const { egressSettingsFromConfig } =
        await import('../../egress/egress-settings-from-config.js');
      const egress = await egressSettingsFromConfig(config);
      for (const file of egress.unreadable)
        ctx.io.stderr.write(
          `warning: extra CA file ${file} is not a readable certificate; skipped\n`,
        );
      const controller = new AbortController();
      const stop = () => controller.abort(new BerthError('cancelled', 'interrupted'));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        ctx.exitCode = await runLocal(
          {
            envFile: options.envFile,
            repo: options.repo,
            branch: options.branch,
            sha: options.sha,
            attempts,
            command: options.command,
            prompt,
            json: options.json,
            requireVerify: options.requireVerify,
            dataDir: config.dataDir,
            lookupSecret: (name) => ctx.variable(name),
            instance: config.instance,
            dockerSocket: config.dockerSocket,
            cacheTtlMs: config.cacheTtlMs,
            minFreeDiskMb: config.minFreeDiskMb,
            snapshotTtlMs: config.snapshotTtlMs,
            concurrency: config.concurrency,
            maxAttempts: config.maxAttempts,
            model,
            agentLimits: { ...config.agentLimits, ...agentLimits },
            egress: egress.options,
            setupAllow: config.setupAllow,
            secretKey: { secretKeyFile: config.secretKeyFile, secretKey: config.secretKey },
            signal: controller.signal,
          },
          {
            // The result (JSON keeps its values; text is made inert) and the progress.
            stdout: options.json
              ? (text) => void ctx.io.stdout.write(inertJson(text))
              : (text) => ctx.write(ctx.io.stdout, text, 'visible'),
            stderr: ctx.streamTo(ctx.io.stderr),
          },
        );
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}

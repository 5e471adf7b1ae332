import { z } from 'zod';
import { ERROR_CODES } from '../errors/berth-error.js';
import { environmentSpecSchema } from '../domain/environment/environment-spec.js';
import { agentLimitsSchema } from '../agent/agent-limits-schema.js';
import { STATUSES, STATUS_WORDS } from '../domain/task/status-words.js';

/**
 * The API's request and response bodies, as zod schemas. Request bodies are parsed with them and
 * /openapi.json is generated from them, so the document cannot drift from what the server does.
 * Bodies take the spec as `unknown` for parsing (the environment schema reports its own issues
 * with paths relative to the spec, like an environment file) and as the environment schema for
 * the document.
 */

const secretValues = z
  .record(z.string(), z.string())
  .describe('Secret values by name; write-only, never returned');

function environmentBodies<S extends z.ZodType>(spec: S) {
  return {
    create: z.strictObject({ spec, secrets: secretValues.optional() }),
    update: z.strictObject({
      spec,
      secrets: secretValues.optional(),
      removeSecrets: z.array(z.string()).optional().describe('Names of stored secrets to remove'),
    }),
    validate: z.strictObject({ spec }),
  };
}

/** For parsing: the spec is validated by the environment service. */
export const requestBodies = {
  ...environmentBodies(z.unknown()),
  createToken: z.strictObject({
    name: z.string(),
    admin: z.boolean().optional(),
    slackUser: z
      .string()
      .optional()
      .describe('A Slack user id (U0123ABCD) that acts as this token in Slack (docs/slack.md)'),
  }),
  linkSlackUser: z.strictObject({
    slackUser: z.string().describe('A Slack user id (U0123ABCD)'),
  }),
};

/** For the document: the same bodies with the environment schema in place. */
export const documentedRequestBodies = {
  ...environmentBodies(environmentSpecSchema),
  createToken: requestBodies.createToken,
  linkSlackUser: requestBodies.linkSlackUser,
};

export const healthView = z.object({ status: z.literal('ok'), version: z.string() });

export const whoamiView = z.object({ id: z.string(), name: z.string(), admin: z.boolean() });

export const serverStatusView = z.object({
  version: z.string(),
  adminOnly: z
    .boolean()
    .describe('true for a token that is not an admin: the fields below are then null'),
  dataDir: z.string().nullable(),
  dataDirWritable: z.boolean().nullable(),
  disk: z
    .object({
      rootDir: z.string().describe("The Docker engine's data directory"),
      freeMb: z.number().nullable().describe('null: not on the server’s machine'),
      minFreeMb: z.number().describe('BERTH_MIN_FREE_DISK_MB'),
    })
    .nullable(),
});

export const environmentView = z.object({
  id: z.string().describe('env_…'),
  name: z.string(),
  spec: environmentSpecSchema.describe(
    'The environment, normalised (shorthands expanded, defaults filled in)',
  ),
  secrets: z.array(z.string()).describe('Names of the secrets that have a value; never values'),
  createdAt: z.string(),
  updatedAt: z.string(),
  revision: z.number().int(),
});

export const environmentList = z.object({ environments: z.array(environmentView) });

/** What the server accepts but a person should look at (the allowlist lint's warnings). */
export const specWarnings = z
  .array(
    z.object({
      path: z.string().describe('The field, as refusals name it: internet.domains[2]'),
      message: z.string(),
    }),
  )
  .describe('Accepted, but worth a look (for example an allowlisted host anybody can publish on)');

/** The environment after create or update, with the warnings on what was written. */
export const writtenEnvironmentView = environmentView.extend({ warnings: specWarnings });

export const validateResult = z.object({
  valid: z.literal(true),
  spec: environmentSpecSchema,
  warnings: specWarnings,
});

export const tokenView = z.object({
  id: z.string().describe('tok_…'),
  name: z.string(),
  admin: z.boolean(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

export const tokenList = z.object({ tokens: z.array(tokenView) });

export const slackUserLink = z.object({
  id: z.string().describe('tok_…'),
  name: z.string(),
  slackUser: z.string().describe('The Slack user id now acting as this token'),
});

export const createdToken = z.object({
  id: z.string(),
  name: z.string(),
  admin: z.boolean(),
  createdAt: z.string(),
  token: z.string().describe('The token value: shown once, never again'),
});

export const errorBody = z.object({
  code: z.enum(
    Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]],
  ),
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
  requestId: z.string(),
});

export type EnvironmentView = z.output<typeof environmentView>;
export type TokenView = z.output<typeof tokenView>;
export type CreatedToken = z.output<typeof createdToken>;

// ---- tasks ---------------------------------------------------------------------------------

export const createTaskBody = z.strictObject({
  environment: z.string().min(1).describe('The environment name'),
  prompt: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe('What the agent is asked to do'),
  command: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe('A command run as the agent phase instead of the agent'),
  branch: z.string().optional(),
  sha: z.string().optional(),
  attempts: z
    .number()
    .int()
    .optional()
    .describe(
      "Independent attempts (default 1); from 1 to the server's cap (BERTH_MAX_ATTEMPTS), else 400 naming the range",
    ),
  verify: z
    .boolean()
    .optional()
    .describe("false: the environment's verify command is not run (berth env test); default true"),
  model: z.string().min(1).max(200).optional().describe("The agent's model for this task"),
  limits: agentLimitsSchema
    .pick({ maxTurns: true, wallTimeMs: true, maxTokens: true })
    .optional()
    .describe("The agent's limits for this task (over the server's)"),
});

const changedFile = z.object({
  path: z.string(),
  added: z.number().nullable(),
  removed: z.number().nullable(),
  binary: z.boolean(),
});

export const commandView = z.object({
  command: z.string(),
  exitCode: z.number().int(),
  output: z.string().describe('stdout and stderr interleaved, secrets masked, head and tail kept'),
  phase: z.string(),
  durationMs: z.number(),
  timedOut: z.boolean(),
});

export const verificationView = z.object({
  command: z.string(),
  exitCode: z.number().int(),
  output: z.string().describe('stdout and stderr interleaved, secrets masked, head and tail kept'),
  passed: z.boolean().describe('Exit code 0; a failed verification does not fail the attempt'),
  durationMs: z.number(),
  timedOut: z.boolean(),
});

/** The status words (status-words.ts), with what each means, for the API's description. */
const statusWord = z.enum(STATUSES);
const STATUS_MEANINGS = Object.entries(STATUS_WORDS)
  .map(([word, meaning]) => `\`${word}\`: ${meaning}.`)
  .join(' ');

export const attemptView = z.object({
  id: z.string().describe('att_…'),
  index: z.number().int(),
  status: statusWord.describe(`The attempt's status, from its phase. ${STATUS_MEANINGS}`),
  phase: z.string(),
  cacheHit: z.boolean().nullable(),
  diff: z.string().describe('git diff --binary against the checked-out commit'),
  message: z.string().describe('The final message'),
  error: z.string().nullable(),
  errorCode: z.string().nullable(),
  errorDetails: z.record(z.string(), z.unknown()).nullable(),
  commands: z.array(commandView),
  files: z.array(changedFile),
  filesChanged: z.number().int(),
  linesAdded: z.number().int(),
  linesRemoved: z.number().int(),
  baseCommit: z.string().nullable(),
  snapshotImage: z.string().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
  verification: verificationView
    .nullable()
    .describe("The environment's verify command as Berth ran it after the agent; null without one"),
  tokens: z
    .number()
    .int()
    .nullable()
    .describe('Model tokens used (prompt + completion); null when none were recorded'),
  followUpOf: z.string().nullable().describe('A follow-up turn: the attempt it continues'),
  request: z.string().nullable().describe('A follow-up turn: its prompt (or command) as given'),
  turnDiff: z
    .string()
    .nullable()
    .describe(
      'A follow-up turn: its own change; `diff` stays the whole change against the original commit',
    ),
  secretFiles: z
    .array(z.string())
    .describe(
      'Files whose change held a secret value of the environment (names masked): `diff` has the values masked, and `task apply` and `task pr` refuse it',
    ),
  deniedHosts: z
    .array(
      z.object({
        host: z.string(),
        method: z.string(),
        reason: z.string(),
        suggestion: z
          .string()
          .describe(
            'The change to the environment file (or the server setting) that would allow it',
          ),
      }),
    )
    .describe(
      'Hosts the egress proxy denied during the attempt, each with a suggestion for a person to review; Berth never applies it',
    ),
});

export const taskView = z.object({
  id: z.string().describe('task_…'),
  environment: z.string(),
  status: statusWord.describe(
    `The task's status, from its attempts' (the latest turn's; \`running\` while an earlier turn's attempt is). ${STATUS_MEANINGS}`,
  ),
  prompt: z.string(),
  command: z.string().nullable(),
  branch: z.string().nullable(),
  sha: z.string().nullable(),
  createdBy: z
    .string()
    .nullable()
    .describe(
      'The name of the token that submitted the task (null for tasks from before it was kept)',
    ),
  createdAt: z.string(),
  updatedAt: z.string(),
  picked: z
    .string()
    .nullable()
    .describe(
      'The picked attempt (berth task pick); a lone attempt is picked already; null until one is',
    ),
  attempts: z.array(attemptView),
});

export const pickTaskBody = z.strictObject({
  attempt: z.string().min(1).describe('The attempt id (att_…)'),
});

export const pullRequestBody = z.strictObject({
  title: z
    .string()
    .max(256)
    .optional()
    .describe("The pull request's title (default: the prompt's first line)"),
  draft: z.boolean().optional().describe('Open it as a draft'),
  allowWorkflows: z
    .boolean()
    .optional()
    .describe(
      'Push even when the diff adds or changes files under .github/workflows/ (they run on the forge before review)',
    ),
});

export const pullRequestResult = z.object({
  attempt: z.string().describe('The attempt whose diff was pushed (the picked one)'),
  branch: z.string().describe('berth/<task-id>'),
  remote: z.string().describe('The remote pushed to (without credentials)'),
  commit: z.string().describe('The commit pushed'),
  base: z.string().describe('The branch the pull request goes into'),
  pullRequest: z
    .object({
      url: z.string(),
      number: z.number().int(),
      created: z.boolean().describe('false: an open one was updated'),
    })
    .nullable()
    .describe('null when the remote is not on GitHub (only the branch is pushed)'),
});

export const followUpBody = z.strictObject({
  prompt: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe('What the agent is asked next'),
  command: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe('A command run as the agent phase instead'),
});

export const followUpResult = taskView.extend({
  attempt: z.string().describe('The new turn (att_…), now the pick'),
});

export const pickResult = taskView.extend({
  warning: z.string().nullable().describe('Set when the picked attempt did not succeed'),
});

/** An attempt as the task list shows it: no diff, no command output, no file list (issue 13). */
export const attemptSummary = attemptView
  .omit({ diff: true, turnDiff: true, commands: true, files: true, message: true })
  .extend({
    commandCount: z.number().int().describe('How many commands the attempt ran'),
  });

export const taskSummary = taskView.extend({
  attempts: z
    .array(attemptSummary)
    .describe(
      'Each attempt in short: status, counts, files and lines changed; GET /v1/tasks/{id} and /diff give the diffs and outputs',
    ),
});

export const taskList = z.object({ tasks: z.array(taskSummary) });

export const attemptEvent = z
  .object({ attemptId: z.string(), seq: z.number().int(), at: z.string(), type: z.string() })
  .catchall(z.unknown())
  .describe('One event of the attempt log (phase, log, command, cache, warning, error, …)');

export const eventList = z.object({ events: z.array(attemptEvent) });

export const diffView = z.object({
  attempt: z.string(),
  baseCommit: z.string().nullable(),
  diff: z.string().describe('Secret values of the environment masked (see secretFiles)'),
  secretFiles: z
    .array(z.string())
    .describe(
      'Files whose change held a secret value (names masked); when not empty the diff is not applied or pushed',
    ),
});

export const cacheEntryView = z.object({
  id: z.string(),
  key: z.string(),
  image: z.string(),
  imageId: z.string(),
  sizeBytes: z.number(),
  commit: z.string(),
  exportNames: z.array(z.string()),
  createdAt: z.string(),
  expiresAt: z.string(),
  ageMs: z.number(),
  live: z.boolean().describe('Not expired (a stale entry is live but no task will use it)'),
  state: z
    .enum(['live', 'stale', 'expired'])
    .describe(
      '`stale`: its key no longer matches the environment (see `staleBecause`); `expired`: past `expiresAt`',
    ),
  staleBecause: z
    .array(z.string())
    .describe(
      'The parts of the key changed since: repository, versions, setup, maintenance, env (from the environment), baseImage (the base image was rebuilt), secrets (a secret value changed, or one was added or removed), templates (a template it extends changed), repositoryFile (its repository.config file changed)',
    ),
  sizeBeyondBaseBytes: z
    .number()
    .nullable()
    .describe('What the setup added to the base image (null: the base image is gone)'),
  parts: z
    .object({
      baseImage: z.string().describe("The base image's content id"),
      repository: z.object({ url: z.string(), defaultBranch: z.string() }),
      versions: z.record(z.string(), z.string()),
      setup: z.object({ script: z.string(), strict: z.boolean() }).nullable(),
      maintenance: z.object({ script: z.string(), strict: z.boolean() }).nullable(),
      env: z.record(z.string(), z.string()),
      secrets: z.array(z.string()).describe('Names only (the key holds salted digests)'),
    })
    .describe(
      'What the key was made of when the entry was built (compared with the environment now in `staleBecause`)',
    ),
});

export const cacheResetView = z.object({
  environment: z.string(),
  removed: z.number().describe('Cache entries dropped'),
  images: z.array(
    z.object({
      image: z.string(),
      removed: z.boolean(),
      heldBy: z
        .array(
          z.object({
            kind: z.enum(['snapshot', 'sandbox']),
            name: z.string(),
            attempt: z.string().nullable(),
            expiresAt: z.string().nullable(),
          }),
        )
        .describe('What keeps an image not removed; it is removed once they are gone'),
    }),
  ),
});

export const cacheView = z.object({ environment: z.string(), entries: z.array(cacheEntryView) });

export type TaskViewBody = z.output<typeof taskView>;
export type AttemptViewBody = z.output<typeof attemptView>;

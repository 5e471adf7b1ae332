import { z } from 'zod';
import { parseDomainPattern } from '../internet/host-name.js';
import { allowlistPatternRefusal } from '../internet/allowlist-lint.js';
import { HTTP_METHODS } from '../internet/http-methods.js';
import { refuseInertInternetSettings } from './inert-internet-settings.js';
import {
  internetBudget,
  internetCredential,
  internetRule,
  refuseInvalidInternetGrants,
} from './internet-grants.js';
import { classifyRepositoryUrl, repositoryUrlCredentialProblem } from './repository-url.js';
import { githubTriggerSchema } from './github-trigger.js';
import { slackTriggerSchema } from './slack-trigger.js';

/**
 * The one schema of an environment, as stored and as written in an environment file. Unknown
 * fields are refused everywhere (strict objects). Shorthands (a repository as a plain URL, a
 * script as a plain string) are normalised to the full form, so the rest of Berth sees one shape.
 */

export const SCRIPT_MAX_BYTES = 64 * 1024;
export const INTERNET_PRESETS = ['common-dependencies'] as const;
export const LANGUAGES = ['node', 'python', 'go', 'rust', 'java', 'ruby'] as const;

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the sandbox must own; an environment may not set them. */
const RESERVED_VARIABLES =
  /^(BERTH_.*|HTTPS?_PROXY|https?_proxy|NO_PROXY|no_proxy|ALL_PROXY|all_proxy)$/;

const nameSchema = z
  .string()
  .regex(
    NAME,
    'use 1-63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
  );

const variableName = z
  .string()
  .regex(
    VARIABLE_NAME,
    'must be a shell variable name (letters, digits and "_", not starting with a digit)',
  )
  .refine(
    (name) => !RESERVED_VARIABLES.test(name),
    'this variable is set by Berth and cannot be overridden',
  );

const branchName = z
  .string()
  .min(1)
  .max(255)
  .refine((b) => !b.startsWith('-'), 'a branch name cannot start with "-"')
  .refine(
    (b) => !/[\s\x00-\x1f\x7f~^:?*[\\]|\.\.|@\{|\/\/|^\/|\/$|\.lock$|\.$/.test(b),
    'not a valid git branch name',
  );

const repositoryUrl = z.string().superRefine((url, ctx) => {
  // Credentials are refused first (and alone): a URL is stored and shown as it is.
  const credentials = repositoryUrlCredentialProblem(url);
  if (credentials !== undefined) {
    ctx.addIssue({ code: 'custom', message: credentials });
    return;
  }
  const result = classifyRepositoryUrl(url);
  if (!result.ok) ctx.addIssue({ code: 'custom', message: result.reason });
});

/**
 * Credentials for a private repository. Over HTTPS: one of the environment's secrets (a token),
 * sent with `username` (default `x-access-token`, what GitHub expects; GitLab takes any name,
 * Bitbucket `x-token-auth`). The orchestrator uses them for the checkout, the `task pr` push and
 * as the GitHub API token; the sandbox never keeps them. Over ssh: the secret is a private key
 * (without a passphrase; the user is the URL's) and `knownHosts` the server's host keys as
 * known_hosts lines (public, so plain text); without it the first host key seen is trusted.
 */
const repositoryCredentials = z.strictObject({
  secret: variableName,
  username: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[^\s:]+$/, 'a user name has no spaces and no ":"')
    .optional(),
  knownHosts: z
    .string()
    .max(64 * 1024)
    .refine((text) => text.trim() !== '', 'knownHosts is empty')
    .optional(),
});

/**
 * `repository.config`: a file in the repository whose fields the environment takes at the commit
 * its cache is built from (repository-config.ts). A path inside the repository: relative, no
 * `..`, no control characters.
 */
const repositoryConfigPath = z
  .string()
  .min(1)
  .max(1024)
  .refine(
    (p) =>
      !p.startsWith('/') &&
      !p.startsWith('-') &&
      !/^[A-Za-z]:/.test(p) &&
      !/[\x00-\x1f\x7f\\]/.test(p) &&
      !p.split('/').some((part) => part === '..' || part === '') &&
      !p.endsWith('/'),
    'must be a path inside the repository: relative (no leading "/"), without ".." or empty parts',
  );

/**
 * `image`: `universal`, `minimal` or a local image reference; or `{ dockerfile: PATH }`, an image
 * built from a Dockerfile in the repository (dockerfile-image.ts), kept as the text
 * `dockerfile:PATH` (the form the rest of Berth sees, and that is taken back as written).
 */
export const DOCKERFILE_IMAGE_PREFIX = 'dockerfile:';
const image = z.union(
  [
    z
      .string()
      .min(1)
      .max(1100)
      .refine(
        (name) =>
          name.startsWith(DOCKERFILE_IMAGE_PREFIX)
            ? repositoryConfigPath.safeParse(name.slice(DOCKERFILE_IMAGE_PREFIX.length)).success
            : name.length <= 255 && /^[a-z0-9][a-z0-9._/:@-]*$/.test(name),
        'not a valid image name',
      ),
    z
      .strictObject({ dockerfile: repositoryConfigPath })
      .transform((value) => `${DOCKERFILE_IMAGE_PREFIX}${value.dockerfile}`),
  ],
  {
    error:
      'not a valid image: an image name (universal, minimal or a local reference), or { dockerfile: PATH } with a path inside the repository (relative, without ".." or empty parts)',
  },
);

const repositoryObject = z.strictObject({
  url: repositoryUrl,
  defaultBranch: branchName.default('main'),
  credentials: repositoryCredentials.optional(),
  config: repositoryConfigPath.optional(),
});

const repository = z
  .union([repositoryUrl, repositoryObject])
  .transform((value) =>
    typeof value === 'string' ? { url: value, defaultBranch: 'main' } : value,
  );

const scriptText = z
  .string()
  .refine(
    (script) => Buffer.byteLength(script, 'utf8') <= SCRIPT_MAX_BYTES,
    `a script may be at most ${SCRIPT_MAX_BYTES} bytes`,
  );

const scriptObject = z.strictObject({
  script: scriptText,
  /** Run with `set -euo pipefail` (stop at the first failing command). */
  strict: z.boolean().default(true),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(6 * 3600_000)
    .default(30 * 60_000),
});

const script = z
  .union([scriptText, scriptObject])
  .transform((value) =>
    typeof value === 'string' ? { script: value, strict: true, timeoutMs: 30 * 60_000 } : value,
  );

const domainPattern = z.string().superRefine((pattern, ctx) => {
  const result = parseDomainPattern(pattern);
  if (!result.ok) ctx.addIssue({ code: 'custom', message: result.reason });
});

/** An allowlist entry: a valid pattern that is not `*` nor a wildcard over a public suffix. */
const allowedDomainPattern = z.string().superRefine((pattern, ctx) => {
  const result = parseDomainPattern(pattern);
  const refusal = allowlistPatternRefusal(pattern) ?? (result.ok ? undefined : result.reason);
  if (refusal !== undefined) ctx.addIssue({ code: 'custom', message: refusal });
});

const method = z
  .string()
  .transform((m) => m.toUpperCase())
  .refine((m) => (HTTP_METHODS as readonly string[]).includes(m), {
    message: `not an HTTP method Berth can allow (one of ${HTTP_METHODS.join(', ')})`,
  });

const internet = z.strictObject({
  access: z.enum(['off', 'allowlist', 'on']).default('off'),
  presets: z.array(z.enum(INTERNET_PRESETS)).default([]),
  domains: z.array(allowedDomainPattern).max(500).default([]),
  /** When set, only these methods are allowed (HTTPS is intercepted to check them). */
  methods: z.array(method).min(1).optional(),
  /** Hosts reached as plain tunnels even in method-limited mode (clients that pin certificates). */
  tunnelOnly: z.array(domainPattern).default([]),
  /** Headers the proxy sets on HTTPS requests to a host from a secret (internet-grants.ts). */
  credentials: z.array(internetCredential).max(50).optional(),
  /** Methods by host and path; the first rule whose host and paths match decides. */
  rules: z.array(internetRule).max(200).optional(),
  /** Requests and bytes per attempt through the proxy. */
  budget: internetBudget.optional(),
});

const service = z.strictObject({
  name: nameSchema,
  command: z.string().min(1).max(SCRIPT_MAX_BYTES),
  ready: z
    .union([
      z.strictObject({ command: z.string().min(1) }),
      z.strictObject({ port: z.number().int().min(1).max(65535) }),
    ])
    .optional(),
  timeoutMs: z.number().int().positive().max(600_000).default(60_000),
});

const resources = z.strictObject({
  cpus: z.number().positive().max(64).default(2),
  memoryMb: z
    .number()
    .int()
    .min(64)
    .max(256 * 1024)
    .default(4096),
  diskMb: z
    .number()
    .int()
    .min(100)
    .max(1024 * 1024)
    .default(20 * 1024),
  pids: z.number().int().min(16).max(65536).default(1024),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(24 * 3600_000)
    .default(3600_000),
});

const versionValue = z
  .union([z.string(), z.number()])
  .transform((v) => String(v))
  .refine((v) => /^[0-9][0-9A-Za-z.+-]{0,31}$/.test(v), 'a version looks like "22" or "3.12.1"');

export const environmentSpecSchema = z
  .strictObject({
    name: nameSchema,
    description: z.string().max(2000).optional(),
    /** A template whose fields are this environment's defaults (environment-template.ts). */
    extends: nameSchema.optional(),
    repository,
    image: image.default('universal'),
    versions: z.partialRecord(z.enum(LANGUAGES), versionValue).default({}),
    setup: script.optional(),
    maintenance: script.optional(),
    env: z.record(variableName, z.string().max(32 * 1024)).default({}),
    /** Names of the secrets this environment expects; values are given apart, never in the file. */
    secrets: z.array(variableName).default([]),
    internet: internet.default({ access: 'off', presets: [], domains: [], tunnelOnly: [] }),
    services: z.array(service).max(20).default([]),
    resources: resources.default({
      cpus: 2,
      memoryMb: 4096,
      diskMb: 20 * 1024,
      pids: 1024,
      timeoutMs: 3600_000,
    }),
    /** Names of the tokens that may see and use this environment (admins always may). */
    members: z.array(z.string().min(1).max(100)).default([]),
    /** What may start tasks here besides the API and the CLI (slack-trigger.ts). */
    triggers: z
      .strictObject({
        slack: slackTriggerSchema.optional(),
        /** docs/github.md (github-trigger.ts). */
        github: githubTriggerSchema.optional(),
      })
      .optional(),
    /** A command Berth runs itself after the agent to judge an attempt (for example `npm test`). */
    verify: z.string().min(1).max(SCRIPT_MAX_BYTES).optional(),
    /**
     * A failed verification makes `berth exec --wait` and `berth run` exit with 3 (as
     * `--require-verify` does); without it they exit 0 when every attempt succeeded, verified or not.
     */
    verifyRequired: z.boolean().optional(),
    model: z.string().min(1).max(200).optional(),
    /**
     * Budgets per UTC day (issue 17): a task is refused once the environment's model tokens of
     * the day reached `tokensPerDay`, or when its attempts would take the day's attempts past
     * `attemptsPerDay` (src/usage/budget-check.ts).
     */
    limits: z
      .strictObject({
        tokensPerDay: z.number().int().positive().optional(),
        attemptsPerDay: z.number().int().positive().optional(),
      })
      .optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.verifyRequired === true && spec.verify === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['verifyRequired'],
        message:
          'verifyRequired needs a verify command (add "verify: …", or remove verifyRequired)',
      });
    }
    refuseInertInternetSettings(spec.internet, ctx);
    refuseInvalidInternetGrants(spec.internet, spec.secrets, ctx);
    const credentials = spec.repository.credentials;
    if (credentials === undefined) return;
    if (!spec.secrets.includes(credentials.secret)) {
      ctx.addIssue({
        code: 'custom',
        path: ['repository', 'credentials', 'secret'],
        message: `"${credentials.secret}" is not one of this environment's secrets (add it under "secrets")`,
      });
    }
    const kind = classifyRepositoryUrl(spec.repository.url);
    if (credentials.knownHosts !== undefined && !(kind.ok && kind.kind === 'ssh')) {
      ctx.addIssue({
        code: 'custom',
        path: ['repository', 'credentials', 'knownHosts'],
        message: 'knownHosts applies to ssh repositories only',
      });
    }
  });

/** What a user writes (shorthands allowed). */
export type EnvironmentSpecInput = z.input<typeof environmentSpecSchema>;
/** What Berth works with (normalised, defaults filled in). */
export type EnvironmentSpec = z.output<typeof environmentSpecSchema>;
export type InternetPolicy = EnvironmentSpec['internet'];
export type ServiceSpec = EnvironmentSpec['services'][number];
export type ResourceLimits = EnvironmentSpec['resources'];
export type ScriptSpec = NonNullable<EnvironmentSpec['setup']>;

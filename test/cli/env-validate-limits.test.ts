import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBerth, tempDir } from '../support/cli.js';

/** `berth env validate` holds a file to the same limits as the API, with exit code 2 and the reason. */

const HEAD = 'name: limits\nrepository: https://git.example/acme/app.git\n';

function file(text: string): string {
  const path = join(tempDir('env-limits'), 'env.yaml');
  writeFileSync(path, text);
  return path;
}

describe('berth env validate: limits of an environment file', () => {
  it('refuses an alias bomb, 40,000 keys and a duplicate key with exit code 2 and the reason', async () => {
    let bomb = `${HEAD}a0: &a0 [x, x, x, x, x, x, x, x, x]\n`;
    for (let i = 1; i < 9; i++)
      bomb += `a${i}: &a${i} [${Array(9)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`;
    let keys = `${HEAD}env:\n`;
    for (let i = 0; i < 40_000; i++) keys += `  K${i}: v\n`;
    for (const [text, reason] of [
      [bomb, /aliases expand too much/],
      [keys, /more than 2000 keys and sequence items in the file \(line 2001, column \d+\)/],
      [`${HEAD}env:\n  A: 1\n  A: 2\n`, /env\.A: duplicate key "A" \(line 5, column 3\)/],
    ] as const) {
      const r = await runBerth(['env', 'validate', '--file', file(text)]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(reason);
    }
  });
});

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGit } from './run-git.js';
import { BUGGY_ADDER } from './scripted-turns.js';

/** A fresh temporary git repository (prefix `name`) with BUGGY_ADDER committed on `main`; its path. */
export function makeBuggyAdderRepository(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `berth-${name}-`));
  runGit(dir, 'init', '-q', '-b', 'main');
  mkdirSync(join(dir, 'src'));
  for (const [path, text] of Object.entries(BUGGY_ADDER)) writeFileSync(join(dir, path), text);
  runGit(dir, 'add', '-A');
  runGit(dir, 'commit', '-qm', 'initial');
  return dir;
}

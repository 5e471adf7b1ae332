import { execFileSync } from 'node:child_process';

/** Runs git in `dir` as a test author and returns its output, trimmed. */
export function runGit(dir: string, ...args: string[]): string {
  return execFileSync(
    'git',
    ['-C', dir, '-c', 'user.name=T', '-c', 'user.email=t@berth.example', ...args],
    { encoding: 'utf8' },
  ).trim();
}

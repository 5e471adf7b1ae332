import { describe, expect, it } from 'vitest';
import { taskExitCode, VERIFY_FAILED_EXIT_CODE } from '../../src/domain/task/task-exit-code.js';
import { parseEnvironmentSpec } from '../../src/domain/environment/environment-file.js';

/** The exit code of `exec --wait` and `run`, and `verifyRequired` (issue 20 item 2). */

const ok = { status: 'succeeded' as const, verification: { passed: true } };
const unverified = { status: 'succeeded' as const, verification: { passed: false } };
const noVerify = { status: 'succeeded' as const, verification: null };
const failed = { status: 'failed' as const, verification: null };

describe('taskExitCode', () => {
  it('is 0 when every attempt succeeded, verified or not, unless verification is required', () => {
    expect(taskExitCode([ok, unverified], false)).toBe(0);
    expect(taskExitCode([ok, unverified], true)).toBe(VERIFY_FAILED_EXIT_CODE);
    expect(taskExitCode([noVerify], true)).toBe(VERIFY_FAILED_EXIT_CODE);
    expect(taskExitCode([ok, ok], true)).toBe(0);
    expect(VERIFY_FAILED_EXIT_CODE).toBe(3);
  });

  it('is 1 when an attempt did not succeed, whatever its verification', () => {
    expect(taskExitCode([ok, failed], false)).toBe(1);
    expect(taskExitCode([ok, failed], true)).toBe(1);
    expect(taskExitCode([{ status: 'cancelled', verification: null }], false)).toBe(1);
    expect(taskExitCode([], false)).toBe(1);
  });
});

describe('verifyRequired', () => {
  const base = { name: 'v', repository: 'https://git.example.test/a/v.git' };
  it('is taken with a verify command and refused without one, naming the field', () => {
    expect(
      parseEnvironmentSpec({ ...base, verify: 'npm test', verifyRequired: true }),
    ).toMatchObject({ verify: 'npm test', verifyRequired: true });
    expect(() => parseEnvironmentSpec({ ...base, verifyRequired: true })).toThrow(
      /verifyRequired: verifyRequired needs a verify command/,
    );
    expect(parseEnvironmentSpec(base).verifyRequired).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import type { Attempt, AttemptResult } from '../../src/domain/task/attempt.js';
import type { Task } from '../../src/domain/task/task.js';
import { taskView } from '../../src/server/task-views.js';
import { describeTask } from '../../src/cli/commands/task-command.js';
import { taskView as taskViewSchema } from '../../src/server/api-schemas.js';
import { deniedHosts } from '../../src/domain/internet/egress-denial.js';

/** Issue 19 item 5: the task's results list the denied hosts with a suggestion each (API view, `task show`). */

const T0 = '2026-01-01T00:00:00.000Z';

const internet = {
  access: 'allowlist' as const,
  presets: [],
  domains: ['api.example.test'],
  methods: ['GET', 'HEAD', 'OPTIONS'],
  tunnelOnly: [],
};

function view(denied: AttemptResult['deniedHosts']) {
  const task: Task = {
    id: 'task_1',
    environmentId: 'env_1',
    prompt: 'post the report',
    command: null,
    ref: {},
    repository: null,
    attemptCount: 1,
    status: 'failed',
    createdAt: T0,
    updatedAt: T0,
  };
  const result: AttemptResult = {
    baseCommit: 'a'.repeat(40),
    diff: '',
    files: [],
    message: 'POST is refused by the proxy.',
    commands: [],
    snapshotImage: null,
    secretFiles: [],
    ...(denied !== undefined ? { deniedHosts: denied } : {}),
  };
  const attempt: Attempt = {
    id: 'att_1',
    taskId: task.id,
    index: 0,
    phase: 'failed',
    cacheHit: false,
    error: null,
    result,
    createdAt: T0,
    startedAt: T0,
    finishedAt: T0,
  };
  return taskView(task, 'svc', [attempt]);
}

describe('denied hosts in the task results', () => {
  const denied = deniedHosts(
    [
      {
        host: 'api.example.test',
        port: 443,
        method: 'POST',
        scheme: 'https',
        rule: 'method',
        reason: 'method not allowed (allowed: GET, HEAD, OPTIONS)',
      },
      {
        host: 'uploads.example.test',
        port: 443,
        method: 'CONNECT',
        scheme: 'connect',
        rule: 'no-match',
        reason: 'uploads.example.test is not on the allowlist',
      },
    ],
    internet,
  );

  it('the API view carries deniedHosts: [{ host, method, reason, suggestion }]', () => {
    const body = taskViewSchema.parse(view(denied));
    expect(body.attempts[0]?.deniedHosts).toEqual(denied);
    expect(taskViewSchema.parse(view(undefined)).attempts[0]?.deniedHosts).toEqual([]);
  });

  it('task show lists each denied host with its suggestion, as something to review', () => {
    const text = describeTask(view(denied));
    expect(text).toContain(
      'att_1: the egress proxy denied (each with the change to the environment file that would allow it; review it, Berth applies none):',
    );
    expect(text).toContain(
      '  POST api.example.test: method not allowed (allowed: GET, HEAD, OPTIONS)\n' +
        '    suggestion: internet.methods: [GET, HEAD, OPTIONS, POST] (add POST; it then applies to every allowed host)',
    );
    expect(text).toContain(
      '  CONNECT uploads.example.test: uploads.example.test is not on the allowlist\n' +
        '    suggestion: internet.domains: [api.example.test, uploads.example.test] (add "uploads.example.test")',
    );
    expect(describeTask(view(undefined))).not.toContain('egress proxy denied');
  });
});

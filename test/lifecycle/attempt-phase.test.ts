import { describe, expect, it } from 'vitest';
import { canMovePhase, isTerminalPhase } from '../../src/domain/task/attempt-phase.js';
import { attemptStatus } from '../../src/domain/task/attempt.js';
import { taskStatusOf } from '../../src/domain/task/task.js';
import { AttemptEventSequence } from '../../src/domain/task/attempt-event.js';

describe('attempt phases', () => {
  it('move forward only, with setup and maintenance as alternatives', () => {
    expect(canMovePhase('queued', 'creating')).toBe(true);
    expect(canMovePhase('creating', 'setup')).toBe(true);
    expect(canMovePhase('creating', 'maintenance')).toBe(true);
    expect(canMovePhase('setup', 'maintenance')).toBe(false);
    expect(canMovePhase('setup', 'services')).toBe(true);
    expect(canMovePhase('agent', 'setup')).toBe(false);
    expect(canMovePhase('results', 'succeeded')).toBe(true);
    expect(canMovePhase('agent', 'succeeded')).toBe(false);
  });

  it('may fail or be cancelled from any live phase, and never leave a terminal one', () => {
    expect(canMovePhase('queued', 'cancelled')).toBe(true);
    expect(canMovePhase('setup', 'failed')).toBe(true);
    expect(canMovePhase('failed', 'queued')).toBe(false);
    expect(canMovePhase('succeeded', 'failed')).toBe(false);
    expect(isTerminalPhase('cancelled')).toBe(true);
    expect(isTerminalPhase('agent')).toBe(false);
  });

  it('map to the status a user sees', () => {
    expect(attemptStatus('queued')).toBe('queued');
    expect(attemptStatus('setup')).toBe('running');
    expect(attemptStatus('failed')).toBe('failed');
  });
});

describe('task status', () => {
  it('is running while any attempt is live and succeeded only when all did', () => {
    expect(taskStatusOf(['queued', 'queued'])).toBe('queued');
    expect(taskStatusOf(['running', 'succeeded'])).toBe('running');
    expect(taskStatusOf(['succeeded', 'succeeded'])).toBe('succeeded');
    expect(taskStatusOf(['succeeded', 'failed'])).toBe('failed');
    expect(taskStatusOf(['cancelled', 'cancelled'])).toBe('cancelled');
    expect(taskStatusOf(['cancelled', 'succeeded'])).toBe('failed');
  });
});

describe('attempt events', () => {
  it('are numbered in order and stamped', () => {
    const seq = new AttemptEventSequence('att_x', () => new Date('2026-01-01T00:00:00Z'));
    const a = seq.next({ type: 'phase', phase: 'creating' });
    const b = seq.next({ type: 'log', stream: 'stdout', text: 'hi\n' });
    expect([a.seq, b.seq]).toEqual([1, 2]);
    expect(b).toMatchObject({
      attemptId: 'att_x',
      type: 'log',
      text: 'hi\n',
      at: '2026-01-01T00:00:00.000Z',
    });
  });
});

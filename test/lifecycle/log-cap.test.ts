import { describe, expect, it } from 'vitest';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import { capLog } from '../../src/lifecycle/log-cap.js';

/**
 * The attempt log's cap (review 4 F2): a sandbox's output and the commands it starts count
 * against it, so neither can make Berth store and replay more than the cap (plus one warning).
 */

const bytesOf = (events: AttemptEventBody[]) =>
  events.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e)), 0);

describe('capLog', () => {
  it('drops output past the cap with one warning', () => {
    const kept: AttemptEventBody[] = [];
    const emit = capLog((e) => kept.push(e), 1000);
    for (let i = 0; i < 50; i++) emit({ type: 'log', stream: 'stdout', text: 'x'.repeat(100) });
    expect(kept.filter((e) => e.type === 'log')).toHaveLength(10);
    expect(kept.filter((e) => e.type === 'warning')).toHaveLength(1);
  });

  it('counts the commands a sandbox starts against the same cap', () => {
    const kept: AttemptEventBody[] = [];
    const emit = capLog((e) => kept.push(e), 10_000);
    for (let i = 0; i < 100; i++) {
      emit({ type: 'command_start', command: `echo ${'y'.repeat(1000)}`, phase: 'agent' });
    }
    expect(bytesOf(kept)).toBeLessThan(10_000 + 2000);
    expect(kept.filter((e) => e.type === 'warning')).toHaveLength(1);
  });

  it("keeps Berth's own events past the cap", () => {
    const kept: AttemptEventBody[] = [];
    const emit = capLog((e) => kept.push(e), 100);
    emit({ type: 'log', stream: 'stdout', text: 'x'.repeat(200) });
    emit({ type: 'phase', phase: 'results' });
    emit({ type: 'log', stream: 'system', text: 'collecting results' });
    expect(kept.map((e) => e.type)).toEqual(['warning', 'phase', 'log']);
  });
});

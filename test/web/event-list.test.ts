import { describe, expect, it } from 'vitest';
import { appendEvents } from '../../web/src/api/event-list.js';

/** The task page's attempt events (review 4 F2): only the latest `files` list is kept. */

type AttemptEvent = { seq: number; type: string; [field: string]: unknown };

const files = (n: number) =>
  ({ seq: n, type: 'files', files: [], total: n }) satisfies AttemptEvent;
const log = (n: number) =>
  ({ seq: n, type: 'log', stream: 'stdout', text: `line ${n}` }) satisfies AttemptEvent;

describe('appendEvents', () => {
  it('keeps every other event and only the latest files event', () => {
    let shown: AttemptEvent[] = [];
    for (let i = 0; i < 100; i += 2) shown = appendEvents(shown, [log(i), files(i + 1)]);
    expect(shown.filter((e) => e.type === 'log')).toHaveLength(50);
    expect(shown.filter((e) => e.type === 'files')).toEqual([files(99)]);
    shown = appendEvents(shown, [log(100)]);
    expect(shown.at(-2)).toEqual(files(99));
  });
});

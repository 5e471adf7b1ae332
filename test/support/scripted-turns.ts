import { lastToolResult, type FakeRequest, type FakeTurn } from './fake-model-server.js';

/** Turns for a scripted model, and the sample repository whose test the agent fixes. */

/** A repository whose `sh test.sh` fails: `add` subtracts. AGENTS.md names the test command. */
export const BUGGY_ADDER: Record<string, string> = {
  'AGENTS.md':
    '# Conventions\n\nRun `sh test.sh` before finishing; it must print "tests passed".\n',
  'src/add.sh': '# add two numbers\nadd() { echo $(( $1 - $2 )); }\n',
  'test.sh':
    '#!/bin/sh\nset -e\n. ./src/add.sh\nif [ "$(add 2 3)" = 5 ]; then echo "tests passed"; else echo "FAIL: add 2 3 gave $(add 2 3)"; exit 1; fi\n',
};

/** The fix, in the `*** Begin Patch` format. */
export const ADDER_FIX = [
  '*** Begin Patch',
  '*** Update File: src/add.sh',
  '@@',
  ' # add two numbers',
  '-add() { echo $(( $1 - $2 )); }',
  '+add() { echo $(( $1 + $2 )); }',
  '*** End Patch',
].join('\n');

export const shell = (command: string, extra: Record<string, unknown> = {}): FakeTurn => ({
  toolCalls: [{ name: 'shell', arguments: { command: ['bash', '-lc', command], ...extra } }],
});

export const answer = (content: string): FakeTurn => ({ content });

/** A turn that checks the previous tool result before going on (else it gives up, failing the test). */
export function after(expected: RegExp, next: FakeTurn): FakeTurn {
  return (request: FakeRequest) => {
    const result = lastToolResult(request);
    if (!expected.test(result)) return { content: `UNEXPECTED tool result: ${result}` };
    return typeof next === 'function' ? next(request) : next;
  };
}

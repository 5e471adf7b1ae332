import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiCompatibleModel } from '../../src/adapters/model/openai-compatible-model.js';
import { ModelAgent } from '../../src/agent/model-agent.js';
import {
  boundConversation,
  conversationToStore,
  LEFT_OUT_NOTE,
} from '../../src/agent/stored-conversation.js';
import type { AttemptEventBody } from '../../src/domain/task/attempt-event.js';
import type { ChatMessage } from '../../src/ports/model-client.js';
import { FakeModelServer, type FakeTurn } from '../support/fake-model-server.js';
import { InMemorySandbox } from './support/in-memory-sandbox.js';

/** The conversation Berth keeps for a follow-up: masked, bounded, resumed with a fresh system prompt. */

const KEY = 'sk-stored-conversation-4411';
const SECRET = 'hunter2-very-secret';
const mask = (text: string) => text.replaceAll(SECRET, '***');

let server: FakeModelServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const shell = (command: string): FakeTurn => ({
  toolCalls: [{ name: 'shell', arguments: { command: ['bash', '-lc', command] } }],
});

async function agentRun(
  turns: FakeTurn[],
  sandbox: InMemorySandbox,
  prompt: string,
  history?: ChatMessage[],
): Promise<{ saved: ChatMessage[] | undefined; events: AttemptEventBody[] }> {
  server = await FakeModelServer.start(turns);
  let saved: ChatMessage[] | undefined;
  const events: AttemptEventBody[] = [];
  const agent = new ModelAgent({
    model: new OpenAiCompatibleModel({ baseUrl: server.baseUrl, apiKey: KEY, model: 'fake' }),
    sandbox: () => sandbox,
    ...(history ? { history } : {}),
    saveConversation: (messages) => {
      saved = messages;
      return Promise.resolve();
    },
  });
  await agent.run({
    attemptId: 'att_1',
    prompt,
    workdir: '/workspace',
    exec: () => Promise.reject(new Error('not used')),
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
    mask,
  });
  return { saved, events };
}

/** The roles of the first turn's messages: its system prompt, request, tool call and result, answer. */
const FIRST_TURN_ROLES = ['system', 'user', 'assistant', 'tool', 'assistant'];

describe('the stored conversation', () => {
  it('is kept masked after a run and resumed by the next turn after a fresh system prompt', async () => {
    const sandbox = new InMemorySandbox({ 'AGENTS.md': 'Run `make check`.\n' }, () => ({
      exitCode: 0,
      output: `token=${SECRET}\n`,
    }));
    const first = await agentRun(
      [shell(`echo ${SECRET}`), { content: `Done; the token was ${SECRET}.` }],
      sandbox,
      'Print the token.',
    );
    const saved = first.saved ?? [];
    expect(saved.map((m) => m.role)).toEqual(FIRST_TURN_ROLES);
    expect(JSON.stringify(saved)).not.toContain(SECRET);
    expect(JSON.stringify(saved)).toContain('***');
    expect(JSON.stringify(saved)).not.toContain(KEY);
    await server?.close();

    // The next turn: AGENTS.md changed; the system prompt says so, the old one is not sent.
    sandbox.files.set('/workspace/AGENTS.md', 'Run `make verify` now.\n');
    const second = await agentRun([{ content: 'ok' }], sandbox, 'And now?', saved);
    const sent = server?.requests[0]?.body.messages ?? [];
    expect(sent.map((m) => m.role)).toEqual([...FIRST_TURN_ROLES, 'user']);
    expect(sent[0]?.content).toContain('make verify');
    expect(JSON.stringify(sent)).not.toContain('make check');
    expect(sent[1]?.content).toBe('Print the token.');
    expect(sent[2]?.tool_calls?.[0]?.function.name).toBe('shell');
    expect(sent[3]?.content).toContain('token=***');
    expect(sent[5]?.content).toBe('And now?');
    expect(server?.requests[0]?.raw).not.toContain(SECRET);
    // The follow-up's own conversation holds both turns, for the turn after it.
    expect(second.saved?.map((m) => m.role)).toEqual([...FIRST_TURN_ROLES, 'user', 'assistant']);
  });

  it('a failure to store it is a warning, not a failed run', async () => {
    server = await FakeModelServer.start([{ content: 'ok' }]);
    const events: AttemptEventBody[] = [];
    const agent = new ModelAgent({
      model: new OpenAiCompatibleModel({ baseUrl: server.baseUrl, apiKey: KEY, model: 'fake' }),
      sandbox: () => new InMemorySandbox(),
      saveConversation: () => Promise.reject(new Error('disk full')),
    });
    const outcome = await agent.run({
      attemptId: 'att_1',
      prompt: 'x',
      workdir: '/workspace',
      exec: () => Promise.reject(new Error('not used')),
      emit: (e) => events.push(e),
      signal: new AbortController().signal,
    });
    expect(outcome.succeeded).toBe(true);
    const warnings = events.flatMap((e) => (e.type === 'warning' ? [e.message] : []));
    expect(warnings.some((m) => m.includes('disk full'))).toBe(true);
  });

  it('is bounded: long messages cut, the oldest exchanges left out whole with a note', () => {
    const exchange = (i: number): ChatMessage[] => [
      {
        role: 'assistant',
        content: null,
        toolCalls: [{ id: `c${i}`, name: 'shell', arguments: `{"n":${i}}` }],
      },
      { role: 'tool', toolCallId: `c${i}`, content: `out ${i} ${'y'.repeat(1000)}` },
    ];
    const messages: ChatMessage[] = [
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'the first request' },
      ...Array.from({ length: 50 }, (_, i) => exchange(i)).flat(),
      { role: 'assistant', content: 'final answer' },
    ];
    const bounded = boundConversation(messages, 20_000);
    expect(JSON.stringify(bounded).length).toBeLessThanOrEqual(20_000);
    expect(bounded[0]).toEqual({ role: 'system', content: 'sys' });
    expect(bounded[1]).toEqual({ role: 'user', content: 'the first request' });
    const note = bounded[2];
    expect(note?.role).toBe('user');
    const dropped = Number(/(\d+) earlier/.exec(note?.role === 'user' ? note.content : '')?.[1]);
    expect(dropped % 2).toBe(0);
    expect(note).toEqual({ role: 'user', content: LEFT_OUT_NOTE(dropped) });
    // Every tool result still follows the assistant message that called it.
    expect(bounded[3]?.role).toBe('assistant');
    expect(bounded.at(-1)).toEqual({ role: 'assistant', content: 'final answer' });
    // Bounding again (a follow-up of a bounded conversation) adds to the same note.
    const again = boundConversation(
      [...bounded, { role: 'user', content: 'more' }, ...exchange(99)],
      20_000,
    );
    const count = Number(
      /(\d+) earlier/.exec(again[2]?.role === 'user' ? again[2].content : '')?.[1],
    );
    expect(count).toBeGreaterThan(dropped);
    expect(again.filter((m) => m.role === 'user' && m.content.startsWith('[Berth:'))).toHaveLength(
      1,
    );

    const long = conversationToStore([{ role: 'user', content: 'z'.repeat(200_000) }]);
    expect(JSON.stringify(long).length).toBeLessThan(70_000);
    expect(JSON.stringify(long)).toContain('bytes left out');
  });
});

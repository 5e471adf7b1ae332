import type { ChatMessage } from '../ports/model-client.js';
import { cutMiddle } from './cut-middle.js';

/**
 * The model conversation as Berth keeps it between turns of a task (DESIGN §5: a follow-up
 * resumes the attempt's conversation): the Chat Completions messages, tool calls and tool results
 * included, secret values masked, bounded in size.
 *
 * Threat model: the conversation is stored in the database and sent to the model again. The
 * model's API key is never in it (it travels in a header of the model client). Secret values of
 * the environment are masked in every message before storing (tool outputs are masked already;
 * this covers the model's own words and tool arguments too). The size bound keeps one attempt's
 * row small enough for both stores and for a model's context: the oldest exchanges go first.
 */

/** At most this many characters of JSON per stored conversation. */
export const CONVERSATION_MAX_CHARS = 1_000_000;
/** No single message is kept longer than this. */
export const CONVERSATION_MESSAGE_MAX_CHARS = 64_000;

export const LEFT_OUT_NOTE = (count: number): string =>
  `[Berth: ${count} earlier messages of this conversation were left out to keep it within its size limit.]`;

/** The conversation with `mask` applied to every text the messages carry. */
export function maskConversation(
  messages: readonly ChatMessage[],
  mask: (text: string) => string,
): ChatMessage[] {
  return messages.map((m): ChatMessage => {
    switch (m.role) {
      case 'assistant':
        return {
          role: 'assistant',
          content: m.content === null ? null : mask(m.content),
          ...(m.toolCalls
            ? { toolCalls: m.toolCalls.map((c) => ({ ...c, arguments: mask(c.arguments) })) }
            : {}),
        };
      case 'tool':
        return { role: 'tool', toolCallId: m.toolCallId, content: mask(m.content) };
      default:
        return { role: m.role, content: mask(m.content) };
    }
  });
}

function size(messages: readonly ChatMessage[]): number {
  return JSON.stringify(messages).length;
}

function cutMessage(m: ChatMessage, maxChars: number): ChatMessage {
  if (m.role === 'assistant') {
    return {
      ...m,
      content: m.content === null ? null : cutMiddle(m.content, maxChars),
      ...(m.toolCalls
        ? {
            toolCalls: m.toolCalls.map((c) => ({
              ...c,
              arguments: cutMiddle(c.arguments, maxChars),
            })),
          }
        : {}),
    };
  }
  return { ...m, content: cutMiddle(m.content, maxChars) };
}

/**
 * The conversation within `maxChars` of JSON: every message cut to `messageMaxChars`, then, while
 * too long, the oldest exchanges after the first request are left out whole (an assistant
 * message goes with its tool results, so the conversation stays valid) and a note says so. The
 * system prompt, the first request and the last exchange are always kept.
 */
export function boundConversation(
  messages: readonly ChatMessage[],
  maxChars = CONVERSATION_MAX_CHARS,
  messageMaxChars = CONVERSATION_MESSAGE_MAX_CHARS,
): ChatMessage[] {
  const cut = messages.map((m) => cutMessage(m, messageMaxChars));
  if (size(cut) <= maxChars) return cut;
  // The head kept: the system prompt and the first user request.
  const firstUser = cut.findIndex((m) => m.role === 'user');
  const headEnd = firstUser < 0 ? Math.min(1, cut.length) : firstUser + 1;
  const head = cut.slice(0, headEnd);
  let rest = cut.slice(headEnd);
  // An earlier note (a follow-up of a bounded conversation) is replaced by one with the new count.
  let dropped = 0;
  const note = /^\[Berth: (\d+) earlier messages/.exec(
    rest[0]?.role === 'user' ? rest[0].content : '',
  );
  if (note?.[1] !== undefined) {
    dropped = Number(note[1]);
    rest = rest.slice(1);
  }
  const withNote = () => [
    ...head,
    ...(dropped > 0 ? [{ role: 'user' as const, content: LEFT_OUT_NOTE(dropped) }] : []),
    ...rest,
  ];
  while (size(withNote()) > maxChars) {
    // The next exchange boundary: the first message after rest[0] that is not a tool result.
    let next = 1;
    while (next < rest.length && rest[next]?.role === 'tool') next++;
    if (next >= rest.length) break;
    rest = rest.slice(next);
    dropped += next;
  }
  return withNote();
}

/** What is stored for an attempt: masked, then bounded. */
export function conversationToStore(
  messages: readonly ChatMessage[],
  mask: (text: string) => string = (t) => t,
): ChatMessage[] {
  return boundConversation(maskConversation(messages, mask));
}

import { randomBytes } from 'node:crypto';

/** Prefixed ids, so a log line says what it is about. */
export const ID_PREFIXES = {
  environment: 'env',
  task: 'task',
  attempt: 'att',
  token: 'tok',
  request: 'req',
  cacheEntry: 'cache',
  event: 'evt',
  template: 'tpl',
  /** A turn followed in a Slack thread (src/integrations/slack/). */
  slackTurn: 'slt',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

export function newId(kind: IdKind, length = 16): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += ALPHABET[byte % ALPHABET.length];
  return `${ID_PREFIXES[kind]}_${out}`;
}

export function hasPrefix(id: string, kind: IdKind): boolean {
  return id.startsWith(`${ID_PREFIXES[kind]}_`);
}

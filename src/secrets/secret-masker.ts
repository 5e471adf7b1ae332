/**
 * SecretMasker: removes secret values from text before it is logged or stored (setup and
 * maintenance output, error messages).
 *
 * Threat model. A setup script is trusted to use its secrets but not to keep them out of its
 * output: it may echo them, print them base64- or URL-encoded (an auth header, a URL with a
 * password), or the output may arrive split across chunks at any byte. The masker replaces
 * every occurrence of each value and of its encoded forms (base64 at any alignment, base64url,
 * URL encoding, JSON string escaping) for values of 4 characters or more; shorter values are
 * masked only verbatim. It cannot catch a value transformed in other ways (hex, reversed,
 * split by the script itself); the post-setup file scan is the second line of defence.
 */

export const MASK = '***';
const MIN_ENCODED_LENGTH = 4;

/** The base64 characters of `value` that do not depend on its neighbours, for each alignment. */
function base64Cores(value: Buffer): string[] {
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), value]).toString('base64');
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + value.length)) / 6);
    const core = encoded.slice(first, end);
    if (core.length >= MIN_ENCODED_LENGTH) cores.push(core);
  }
  return cores;
}

function formsOf(value: string): string[] {
  if (value === '') return [];
  const forms = new Set<string>([value]);
  if (value.length >= MIN_ENCODED_LENGTH) {
    for (const core of base64Cores(Buffer.from(value, 'utf8'))) {
      forms.add(core);
      forms.add(core.replaceAll('+', '-').replaceAll('/', '_'));
    }
    forms.add(encodeURIComponent(value));
    forms.add(encodeURIComponent(value).replaceAll('%20', '+'));
    forms.add(JSON.stringify(value).slice(1, -1));
  }
  return [...forms];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Masks a stream of text chunks; a value split across chunks is still masked. */
export interface MaskingStream {
  /** Masks a chunk; may hold back a short tail (a possible start of a value) until the next one. */
  push(chunk: string): string;
  /** Everything held back, masked; call at the end of the stream. */
  flush(): string;
}

export class SecretMasker {
  private readonly pattern: RegExp | undefined;
  /** Every form of every value (each is masked). */
  private readonly forms: readonly string[];
  /** The longest form, minus one: the most text held back between chunks. */
  private readonly holdBack: number;

  constructor(values: Iterable<string>) {
    const forms = new Set<string>();
    for (const value of values) for (const form of formsOf(value)) forms.add(form);
    const sorted = [...forms].sort((a, b) => b.length - a.length);
    this.forms = sorted;
    this.pattern =
      sorted.length > 0 ? new RegExp(sorted.map(escapeRegExp).join('|'), 'g') : undefined;
    this.holdBack = Math.max(0, (sorted[0]?.length ?? 0) - 1);
  }

  get isEmpty(): boolean {
    return this.pattern === undefined;
  }

  mask(text: string): string {
    return this.pattern ? text.replace(this.pattern, MASK) : text;
  }

  createStream(): MaskingStream {
    let pending = '';
    return {
      push: (chunk: string): string => {
        if (!this.pattern) return chunk;
        const text = pending + chunk;
        // A match starting before `safe` is complete within `text` (no form is longer than holdBack + 1).
        const safe = text.length - this.holdBack;
        let out = '';
        let cut = 0;
        this.pattern.lastIndex = 0;
        for (let m = this.pattern.exec(text); m !== null; m = this.pattern.exec(text)) {
          if (m.index >= safe) break;
          out += text.slice(cut, m.index) + MASK;
          cut = m.index + m[0].length;
        }
        const emitTo = Math.max(cut, safe);
        out += text.slice(cut, emitTo);
        // Of the tail, only what may start a value is held back (a live log stays live): the
        // text up to the first position where a match starts or where the rest could be the
        // start of a form is out now.
        const tail = text.slice(emitTo);
        this.pattern.lastIndex = 0;
        const inTail = this.pattern.exec(tail);
        let hold = inTail === null ? tail.length : inTail.index;
        for (let i = 0; i < hold; i++) {
          const rest = tail.slice(i);
          if (this.forms.some((form) => form.startsWith(rest))) hold = i;
        }
        out += tail.slice(0, hold);
        pending = tail.slice(hold);
        return out;
      },
      flush: (): string => {
        const rest = this.mask(pending);
        pending = '';
        return rest;
      },
    };
  }
}

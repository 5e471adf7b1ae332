import { BerthError } from '../errors/berth-error.js';

/**
 * Slots for long-lived streams (review 4 F1): each open stream costs the server a read of the
 * store every round, so one caller may hold at most `perCaller` of them and the server at most
 * `total`; one more is refused with `too_many_requests` (429) until one closes.
 *
 * Threat model. Untrusted: the caller, who may open streams in a loop to starve every other
 * request (one member token held 600 and GET /v1/tasks stopped answering). Guarantees: the count
 * is taken before the stream starts and given back exactly once when it ends, however it ends.
 */
export class StreamSlots {
  private readonly open = new Map<string, number>();
  private all = 0;

  constructor(
    private readonly what: string,
    private readonly perCaller: number,
    private readonly total: number,
  ) {}

  /** A slot for `caller`, or a `too_many_requests` error; the function gives it back (once). */
  take(caller: string): () => void {
    const mine = this.open.get(caller) ?? 0;
    if (mine >= this.perCaller)
      throw new BerthError(
        'too_many_requests',
        `this token has ${this.perCaller} ${this.what} open already, the most one token may hold; close one first`,
      );
    if (this.all >= this.total)
      throw new BerthError(
        'too_many_requests',
        `the server has ${this.total} ${this.what} open already, the most it holds; try again later`,
      );
    this.open.set(caller, mine + 1);
    this.all += 1;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.all -= 1;
      const left = (this.open.get(caller) ?? 1) - 1;
      if (left > 0) this.open.set(caller, left);
      else this.open.delete(caller);
    };
  }
}

/**
 * Adds a batch of an attempt's events to those shown. A `files` event is the whole list of the
 * files changed so far, so only the latest one is kept: a long agent phase does not pile up one
 * list every few seconds in the page's memory (review 4 F2).
 */
export function appendEvents<E extends { type: string }>(before: E[], batch: E[]): E[] {
  const all = before.concat(batch);
  if (!batch.some((event) => event.type === 'files')) return all;
  let last = -1;
  all.forEach((event, index) => {
    if (event.type === 'files') last = index;
  });
  return all.filter((event, index) => event.type !== 'files' || index === last);
}

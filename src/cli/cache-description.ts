import type { CacheResetReport } from '../domain/cache/cache-reset.js';

export type CacheResetView = CacheResetReport & { environment: string };

const mb = (bytes: number) => `${Math.round(bytes / 1e6)} MB`;

/** `env cache show`'s size: what the setup added to the base image, and the image's whole size. */
export function cacheSize(entry: {
  sizeBytes: number;
  sizeBeyondBaseBytes: number | null;
}): string {
  return entry.sizeBeyondBaseBytes === null
    ? `${mb(entry.sizeBytes)} (with the base)`
    : `${mb(entry.sizeBeyondBaseBytes)} beyond the base (${mb(entry.sizeBytes)} in all)`;
}

/** `env cache reset`'s answer: what was freed, and what keeps each image that was not. */
export function describeCacheReset(name: string, view: CacheResetView): string {
  const lines = [
    `${name}: dropped ${view.removed} cache entr${view.removed === 1 ? 'y' : 'ies'}; the next task runs the setup again`,
  ];
  for (const image of view.images) {
    if (image.removed) {
      lines.push(`  ${image.image}: removed`);
      continue;
    }
    const holds = image.heldBy.map((h) =>
      h.kind === 'snapshot'
        ? `snapshot ${h.name}${h.attempt !== null ? ` (attempt ${h.attempt})` : ''}${h.expiresAt !== null ? ` until ${h.expiresAt}` : ''}`
        : `sandbox ${h.name}${h.attempt !== null ? ` (attempt ${h.attempt}, running)` : ''}`,
    );
    lines.push(
      `  ${image.image}: kept by ${holds.length > 0 ? holds.join(', ') : 'something the engine names only to docker image rm'}; removed once ${holds.length === 1 ? 'it is' : 'they are'} gone (at most 10 minutes after)`,
    );
  }
  return lines.join('\n');
}

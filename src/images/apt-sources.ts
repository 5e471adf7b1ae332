/**
 * Reads apt's sources (one-line `.list` and deb822 `.sources` files) so images use the same
 * Debian mirror as the host. Nothing here names a mirror: it is always read from the host.
 */
export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
}

/** Parses a deb822 `.sources` file. Disabled entries (`Enabled: no`) are skipped. */
export function parseDeb822Sources(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let current: string | undefined;
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      if (/^\s/.test(line) && current !== undefined) {
        fields.set(current, `${fields.get(current) ?? ''}\n${line.trim()}`);
        continue;
      }
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (match?.[1] === undefined) continue;
      current = match[1].toLowerCase();
      fields.set(current, match[2] ?? '');
    }
    if ((fields.get('enabled') ?? 'yes').trim().toLowerCase() === 'no') continue;
    const words = (key: string): string[] =>
      (fields.get(key) ?? '').split(/\s+/).filter((w) => w !== '');
    const source: AptSource = {
      types: words('types'),
      uris: words('uris'),
      suites: words('suites'),
      components: words('components'),
    };
    const signedBy = fields.get('signed-by')?.trim();
    if (signedBy !== undefined && signedBy !== '' && !signedBy.includes('\n'))
      source.signedBy = signedBy;
    if (source.types.length > 0 && source.uris.length > 0 && source.suites.length > 0)
      sources.push(source);
  }
  return sources;
}

/** Parses a one-line-style `.list` file (`deb [options] uri suite component...`). */
export function parseOneLineSources(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const match = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (match === null) continue;
    const options = match[2] ?? '';
    const signedBy = /signed-by=(\S+)/.exec(options)?.[1];
    sources.push({
      types: [match[1] ?? 'deb'],
      uris: [match[3] ?? ''],
      suites: [match[4] ?? ''],
      components: (match[5] ?? '').split(/\s+/).filter((w) => w !== ''),
      ...(signedBy !== undefined ? { signedBy } : {}),
    });
  }
  return sources;
}

/**
 * The Debian sources an image of `suite` should use: binary entries for that suite (and its
 * -updates/-security companions) signed by Debian's archive key or unsigned, i.e. no third-party
 * repositories whose keys the image would not have.
 */
export function debianSourcesFor(sources: AptSource[], suite: string): AptSource[] {
  return sources
    .filter((s) => s.types.includes('deb'))
    .filter((s) => s.signedBy === undefined || /debian-archive-keyring/.test(s.signedBy))
    .map((s) => ({
      ...s,
      types: ['deb'],
      suites: s.suites.filter((x) => x === suite || x.startsWith(`${suite}-`)),
    }))
    .filter((s) => s.suites.length > 0);
}

/** The mirror debootstrap should use: the first URI serving the suite itself. */
export function debootstrapMirror(sources: AptSource[], suite: string): string | undefined {
  return debianSourcesFor(sources, suite).find((s) => s.suites.includes(suite))?.uris[0];
}

/** Renders sources as one deb822 file, signed by Debian's archive key. */
export function renderDeb822(sources: AptSource[]): string {
  return sources
    .map((s) =>
      [
        `Types: ${s.types.join(' ')}`,
        `URIs: ${s.uris.join(' ')}`,
        `Suites: ${s.suites.join(' ')}`,
        `Components: ${(s.components.length > 0 ? s.components : ['main']).join(' ')}`,
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
      ].join('\n'),
    )
    .join('\n\n')
    .concat('\n');
}

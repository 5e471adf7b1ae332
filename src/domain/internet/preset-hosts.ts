import { normaliseHostName } from './host-name.js';

/**
 * The hosts of the `common-dependencies` preset.
 *
 * The static list names the public registries of the common languages. The npm registry and the
 * Debian archive are deliberately absent: they are read at run time from the image's own
 * configuration (npm's `registry` setting, apt's sources), so a mirror configured in the image is
 * what gets allowed, and the project never carries a registry host name that a given site may
 * reach through its own mirror.
 */

/** Public registries of common languages (exact names; no wildcards on purpose). */
export const COMMON_DEPENDENCY_HOSTS: readonly string[] = [
  // Python (pip)
  'pypi.org',
  'files.pythonhosted.org',
  // Rust (cargo, rustup)
  'crates.io',
  'index.crates.io',
  'static.crates.io',
  'static.rust-lang.org',
  // Go (module proxy and checksum database)
  'proxy.golang.org',
  'sum.golang.org',
  // Java (Maven Central, Gradle)
  'repo.maven.apache.org',
  'repo1.maven.org',
  'plugins.gradle.org',
  'services.gradle.org',
  'downloads.gradle.org',
  // Ruby (RubyGems)
  'rubygems.org',
  'index.rubygems.org',
  // PHP (Composer)
  'repo.packagist.org',
  // .NET (NuGet)
  'api.nuget.org',
  // Elixir/Erlang (Hex)
  'repo.hex.pm',
  'builds.hex.pm',
  // Dart (pub)
  'pub.dev',
];

/** The package-manager configuration read from an image at run time. */
export interface ImagePackageConfiguration {
  /** npm's `registry` setting (`npm config get registry`), a URL. */
  npmRegistry?: string;
  /** The text of apt's sources: one-line `.list` files and/or deb822 `.sources` files, concatenated. */
  aptSources?: string;
}

/**
 * The registry a URL points at: its normalised host name, followed by `:port` when the port is
 * not the scheme's default (a mirror on :8081 is allowed on that port, for that host only).
 * Undefined when it is not an http(s) URL with a DNS name.
 */
function registryOfUrl(raw: string): string | undefined {
  // apt accepts transport prefixes such as "mirror+http://" or "tor+https://".
  const match = /^(?:[a-z0-9]+\+)?(https?):\/\/([^/?#\s]+)/i.exec(raw.trim());
  if (!match) return undefined;
  const scheme = (match[1] ?? '').toLowerCase();
  let authority = match[2] ?? '';
  if (authority.includes('@')) authority = authority.slice(authority.lastIndexOf('@') + 1);
  if (authority.startsWith('[')) return undefined; // IP literal
  const portMatch = /:([0-9]*)$/.exec(authority);
  const host = portMatch ? authority.slice(0, portMatch.index) : authority;
  const normalised = normaliseHostName(host);
  if (!normalised.ok) return undefined;
  const port = portMatch?.[1] ? Number(portMatch[1]) : undefined;
  if (port === undefined || port === (scheme === 'https' ? 443 : 80)) return normalised.name;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return `${normalised.name}:${port}`;
}

/** URLs named by apt sources, in both the one-line and the deb822 format. Comments are ignored. */
export function aptSourceUrls(text: string): string[] {
  const urls: string[] = [];
  let inUris = false;
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/#.*$/, '');
    if (line.trim() === '') {
      inUris = false;
      continue;
    }
    // deb822 continuation lines start with white space.
    if (inUris && /^\s/.test(line)) {
      urls.push(...line.trim().split(/\s+/));
      continue;
    }
    inUris = false;
    const field = /^URIs:\s*(.*)$/i.exec(line);
    if (field) {
      inUris = true;
      urls.push(
        ...(field[1] ?? '')
          .trim()
          .split(/\s+/)
          .filter((u) => u !== ''),
      );
      continue;
    }
    const oneLine = /^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line);
    if (oneLine?.[1]) urls.push(oneLine[1]);
  }
  return urls;
}

/**
 * The registries the image's own package configuration points at (npm registry, apt mirrors):
 * host names, with `:port` when a registry is not on its scheme's default port.
 */
export function hostsFromImageConfiguration(config: ImagePackageConfiguration): string[] {
  const hosts = new Set<string>();
  if (config.npmRegistry !== undefined) {
    const host = registryOfUrl(config.npmRegistry);
    if (host !== undefined) hosts.add(host);
  }
  if (config.aptSources !== undefined) {
    for (const url of aptSourceUrls(config.aptSources)) {
      const host = registryOfUrl(url);
      if (host !== undefined) hosts.add(host);
    }
  }
  return [...hosts];
}

/** Every host of the `common-dependencies` preset for an image: the static list plus its own registries. */
export function commonDependencyHosts(config: ImagePackageConfiguration = {}): string[] {
  return [...new Set([...COMMON_DEPENDENCY_HOSTS, ...hostsFromImageConfiguration(config)])];
}

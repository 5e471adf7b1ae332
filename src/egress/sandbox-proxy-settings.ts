/**
 * What a locked-down sandbox needs so that ordinary tools use the egress proxy and trust the
 * environment's CA: variables (both cases where tools disagree) and files (the CA certificate,
 * a combined trust bundle, apt's proxy configuration). Pure: the runtime writes the files and
 * sets the variables.
 *
 * Threat model note: these settings are a convenience, not the boundary. Code that ignores them
 * has no route out (the network and the firewall are the boundary). Only the CA certificate is
 * written into the sandbox, never its key. Behind a corporate proxy the sandbox is still told only
 * of Berth's egress proxy: the upstream proxy, its address and its credentials are the egress
 * proxy's business (upstream-proxy.ts) and never appear here.
 */
import { BerthError } from '../errors/berth-error.js';

export interface SandboxProxySettingsInput {
  /** The proxy as the sandbox reaches it, `http://host:port`. */
  proxyUrl: string;
  /** The environment CA certificate (PEM); written into the sandbox. */
  caCertificatePem: string;
  /** Where the CA certificate goes (Debian's directory for local CAs by default). */
  caCertificatePath?: string;
  /** Where the combined bundle (system CAs + the environment CA) goes. */
  bundlePath?: string;
  /** The image's system bundle, from which the combined bundle is built. */
  systemBundlePath?: string;
  /** Extra NO_PROXY entries (services inside the sandbox are reached on localhost already). */
  noProxy?: readonly string[];
}

export interface SandboxFile {
  path: string;
  content: string;
  mode: number;
}

export interface SandboxProxySettings {
  env: Record<string, string>;
  files: SandboxFile[];
  /**
   * Commands (argv, run as root, in order, after the files are written) that put the CA into the
   * system store and build the combined bundle (see TRUST_SCRIPT: fast, and a no-op when the
   * sandbox has this CA already).
   */
  commands: string[][];
}

/** Where the installed CA is remembered, so a sandbox that has it already (a snapshot) skips the work. */
export const INSTALLED_CA_MARKER_PATH = '/etc/berth/egress-ca.pem';

/**
 * Puts the CA into the system store and the combined bundle without running
 * `update-ca-certificates` (2+ s) where it is not needed: the CA is appended to the system
 * bundle (what OpenSSL, GnuTLS and curl read; `update-ca-certificates` rebuilds it later from
 * the .crt file, which keeps the CA) and the combined bundle is a copy of that. Images with hooks
 * (Java's keystore) get the full `update-ca-certificates`. Nothing is done when the marker says
 * this CA is installed already. Paths are positional parameters, never spliced into the script.
 */
const TRUST_SCRIPT = [
  'system="$1"; ca="$2"; bundle="$3"; marker="$4"',
  '{ read -r _; read -r line; } < "$ca"',
  'if [ -f "$marker" ] && [ -f "$bundle" ] && [ "$(cat "$marker")" = "$(cat "$ca")" ]; then echo present; exit 0; fi',
  'if [ -n "$(ls -A /etc/ca-certificates/update.d 2>/dev/null)" ] && command -v update-ca-certificates >/dev/null 2>&1; then',
  '  update-ca-certificates >/dev/null 2>&1 || true',
  'elif [ -f "$system" ] && ! grep -qxF -- "$line" "$system"; then',
  '  cat "$ca" >> "$system"',
  'fi',
  'if [ -f "$system" ]; then cat "$system" > "$bundle.tmp"; else : > "$bundle.tmp"; fi',
  'grep -qxF -- "$line" "$bundle.tmp" || cat "$ca" >> "$bundle.tmp"',
  'chmod 0644 "$bundle.tmp" && mv -f "$bundle.tmp" "$bundle"',
  'cp "$ca" "$marker" && chmod 0644 "$marker"',
].join('\n');

export const DEFAULT_CA_CERTIFICATE_PATH = '/usr/local/share/ca-certificates/berth-egress-ca.crt';
export const DEFAULT_BUNDLE_PATH = '/etc/berth/ca-bundle.pem';
export const DEFAULT_SYSTEM_BUNDLE_PATH = '/etc/ssl/certs/ca-certificates.crt';
export const APT_PROXY_CONF_PATH = '/etc/apt/apt.conf.d/95berth-egress-proxy';

const SAFE_PATH = /^\/[A-Za-z0-9._/-]+$/;

function checkPath(field: string, path: string): string {
  if (!SAFE_PATH.test(path) || path.includes('..')) {
    throw new BerthError('invalid_input', `${field} must be an absolute path of plain characters`, {
      field,
      path,
    });
  }
  return path;
}

export function sandboxProxySettings(input: SandboxProxySettingsInput): SandboxProxySettings {
  const match = /^http:\/\/([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):([1-9][0-9]{0,4})\/?$/.exec(
    input.proxyUrl,
  );
  if (match === null || Number(match[2]) > 65535) {
    throw new BerthError('invalid_input', 'proxyUrl must look like http://host:port', {
      proxyUrl: input.proxyUrl,
    });
  }
  const proxyHost = match[1] ?? '';
  const proxyPort = match[2] ?? '';
  const proxy = `http://${proxyHost}:${proxyPort}`;
  if (
    !input.caCertificatePem.includes('-----BEGIN CERTIFICATE-----') ||
    input.caCertificatePem.includes('PRIVATE KEY')
  ) {
    throw new BerthError(
      'invalid_input',
      'caCertificatePem must be a certificate (and nothing else)',
    );
  }
  const caPath = checkPath(
    'caCertificatePath',
    input.caCertificatePath ?? DEFAULT_CA_CERTIFICATE_PATH,
  );
  const bundle = checkPath('bundlePath', input.bundlePath ?? DEFAULT_BUNDLE_PATH);
  const systemBundle = checkPath(
    'systemBundlePath',
    input.systemBundlePath ?? DEFAULT_SYSTEM_BUNDLE_PATH,
  );
  const noProxy = ['localhost', '127.0.0.1', '::1', ...(input.noProxy ?? [])];
  for (const entry of noProxy) {
    if (!/^[A-Za-z0-9.:*/-]+$/.test(entry))
      throw new BerthError('invalid_input', 'invalid NO_PROXY entry', { entry });
  }
  const noProxyText = noProxy.join(',');
  const javaNonProxy = noProxy.filter((h) => !h.includes(':') && !h.includes('/')).join('|');

  const env: Record<string, string> = {
    HTTP_PROXY: proxy,
    HTTPS_PROXY: proxy,
    http_proxy: proxy,
    https_proxy: proxy,
    NO_PROXY: noProxyText,
    no_proxy: noProxyText,
    // Node adds these to its bundled roots. The combined bundle, not the CA alone: it carries the
    // site's own CAs from the system store too (a mirror or a TLS-intercepting proxy upstream,
    // reached through a passthrough tunnel or a tunnel-only host, presents those).
    NODE_EXTRA_CA_CERTS: bundle,
    // Node's own http/https/fetch honour HTTP(S)_PROXY only with this set (Node 22.21+, 24.5+);
    // older Node ignores it, and code there needs a proxy agent (npm has its own settings below).
    NODE_USE_ENV_PROXY: '1',
    SSL_CERT_FILE: bundle,
    REQUESTS_CA_BUNDLE: bundle,
    CURL_CA_BUNDLE: bundle,
    GIT_SSL_CAINFO: bundle,
    PIP_CERT: bundle,
    CARGO_HTTP_CAINFO: bundle,
    CARGO_HTTP_PROXY: proxy,
    BUNDLE_SSL_CA_CERT: bundle,
    HEX_CACERTS_PATH: bundle,
    npm_config_proxy: proxy,
    npm_config_https_proxy: proxy,
    npm_config_cafile: bundle,
    npm_config_noproxy: noProxyText,
    // Java reads proxies from system properties; its trust store is updated by
    // update-ca-certificates where ca-certificates-java is installed.
    JAVA_TOOL_OPTIONS: [
      `-Dhttp.proxyHost=${proxyHost}`,
      `-Dhttp.proxyPort=${proxyPort}`,
      `-Dhttps.proxyHost=${proxyHost}`,
      `-Dhttps.proxyPort=${proxyPort}`,
      `-Dhttp.nonProxyHosts=${javaNonProxy}`,
    ].join(' '),
  };

  const files: SandboxFile[] = [
    {
      path: caPath,
      content: input.caCertificatePem.endsWith('\n')
        ? input.caCertificatePem
        : `${input.caCertificatePem}\n`,
      mode: 0o644,
    },
    {
      path: APT_PROXY_CONF_PATH,
      content:
        `// Written by Berth: apt goes through the egress proxy.\n` +
        `Acquire::http::Proxy "${proxy}";\nAcquire::https::Proxy "${proxy}";\nAcquire::https::CaInfo "${bundle}";\n`,
      mode: 0o644,
    },
  ];

  const bundleDir = bundle.slice(0, bundle.lastIndexOf('/')) || '/';
  const commands: string[][] = [
    [
      'mkdir',
      '-p',
      bundleDir,
      INSTALLED_CA_MARKER_PATH.slice(0, INSTALLED_CA_MARKER_PATH.lastIndexOf('/')),
    ],
    // Paths are passed as positional parameters, never spliced into the script.
    [
      'sh',
      '-c',
      TRUST_SCRIPT,
      'berth-trust',
      systemBundle,
      caPath,
      bundle,
      INSTALLED_CA_MARKER_PATH,
    ],
  ];

  return { env, files, commands };
}

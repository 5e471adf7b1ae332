import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

/**
 * The web UI's built files (web/dist), served at `/` on the API's origin. Every file is read
 * once, when the server starts, into a table keyed by its URL path: a request can only ever get
 * one of those files (no path from a request touches the file system). Page paths (`/tasks/…`,
 * `/login`, …) get index.html, and the client-side router shows the page; `/v1/…`, `/health`,
 * `/openapi.json` and missing `/assets/…` files are never answered with the page.
 *
 * Every answer carries a Content-Security-Policy that allows scripts and styles from this
 * origin only (no inline script, no eval), no plugins, no framing, and fetches only to this
 * origin: text from a sandbox that ever reached the DOM as HTML still could not run script.
 */

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

interface WebFile {
  body: Uint8Array;
  type: string;
  immutable: boolean;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

/** Whether a path belongs to the API, not to the UI's pages. */
function isApiPath(path: string): boolean {
  return (
    path === '/v1' ||
    path.startsWith('/v1/') ||
    path === '/health' ||
    path === '/openapi.json' ||
    path.startsWith('/assets/')
  );
}

export class WebUiFiles {
  private constructor(private readonly files: Map<string, WebFile>) {}

  /** The files of a built UI, or undefined when `root` has no index.html (the UI is not built). */
  static load(root: string): WebUiFiles | undefined {
    try {
      if (!statSync(join(root, 'index.html')).isFile()) return undefined;
    } catch {
      return undefined;
    }
    const files = new Map<string, WebFile>();
    for (const path of filesUnder(root)) {
      const urlPath = '/' + relative(root, path).split(sep).join('/');
      files.set(urlPath, {
        body: readFileSync(path),
        type: TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
        // Vite names built assets by content hash.
        immutable: urlPath.startsWith('/assets/'),
      });
    }
    return new WebUiFiles(files);
  }

  /** The answer to a GET or HEAD for `path`, or undefined when the UI has nothing there. */
  response(method: string, path: string): Response | undefined {
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    const file =
      this.files.get(path) ?? (isApiPath(path) ? undefined : this.files.get('/index.html'));
    if (!file) return undefined;
    return new Response(method === 'HEAD' ? null : file.body, {
      status: 200,
      headers: {
        'content-type': file.type,
        'content-length': String(file.body.byteLength),
        'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
      },
    });
  }
}

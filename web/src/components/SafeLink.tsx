import { httpUrl } from '../format';

/** A link only for an http(s) URL; any other text is shown as text. */
export function SafeLink({ href, children }: { href: string; children?: string }) {
  const url = httpUrl(href);
  if (!url) return <span>{children ?? href}</span>;
  return (
    <a href={url} target="_blank" rel="noopener noreferrer">
      {children ?? href}
    </a>
  );
}

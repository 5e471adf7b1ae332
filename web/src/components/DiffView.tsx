import { useMemo, useState } from 'react';
import { Diff, Hunk, parseDiff } from 'react-diff-view';
import 'react-diff-view/style/index.css';

/**
 * A git diff: a list of its files, then each file's hunks (react-diff-view renders them as text),
 * unified or split. A diff the parser cannot read is shown as plain text.
 */
export function DiffView({ diff, label }: { diff: string; label: string }) {
  const [view, setView] = useState<'unified' | 'split'>('unified');
  const files = useMemo(() => {
    try {
      return parseDiff(diff);
    } catch {
      return undefined;
    }
  }, [diff]);
  if (diff.trim() === '') return <p className="sub">No changes.</p>;
  if (!files) return <pre className="raw-diff">{diff}</pre>;
  const name = (f: (typeof files)[number]) =>
    f.type === 'delete'
      ? f.oldPath
      : f.oldPath !== f.newPath && f.type === 'rename'
        ? `${f.oldPath} → ${f.newPath}`
        : f.newPath;
  return (
    <section className="diff" aria-label={label}>
      <div className="diff-tools">
        <label>
          View{' '}
          <select value={view} onChange={(e) => setView(e.target.value as 'unified' | 'split')}>
            <option value="unified">unified</option>
            <option value="split">split</option>
          </select>
        </label>
      </div>
      <ul className="file-tree" aria-label="Changed files">
        {files.map((file, i) => (
          <li key={i}>
            <span className={`change-${file.type}`}>{file.type}</span> {name(file)}
          </li>
        ))}
      </ul>
      {files.map((file, i) => (
        <div className="diff-file" key={i}>
          <h4 className="diff-file-name">{name(file)}</h4>
          {file.hunks.length === 0 ? (
            <p className="sub">No text changes (binary or mode only).</p>
          ) : (
            <div className="diff-scroll">
              <Diff viewType={view} diffType={file.type} hunks={file.hunks}>
                {(hunks) => hunks.map((hunk) => <Hunk key={hunk.content} hunk={hunk} />)}
              </Diff>
            </div>
          )}
        </div>
      ))}
    </section>
  );
}

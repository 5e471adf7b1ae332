import { useMemo, useRef, useState } from 'react';
import { Diff, Hunk, parseDiff } from 'react-diff-view';
import 'react-diff-view/style/index.css';
import { revealControls } from '../untrusted-text';

interface TreeNode {
  name: string;
  children: Map<string, TreeNode>;
  /** Index of the file in the diff, for a leaf. */
  file?: number;
  type?: string;
}

/** The changed files as a folder tree (paths split at `/`). */
function treeOf(paths: readonly { path: string; type: string }[]): TreeNode {
  const root: TreeNode = { name: '', children: new Map() };
  paths.forEach(({ path, type }, index) => {
    const parts = path.split('/').filter((part) => part !== '');
    let node = root;
    parts.forEach((part, i) => {
      const key = i === parts.length - 1 ? `${part}\u0000${index}` : part;
      let next = node.children.get(key);
      if (!next) {
        next = { name: part, children: new Map() };
        node.children.set(key, next);
      }
      node = next;
    });
    node.file = index;
    node.type = type;
  });
  return root;
}

function Tree({ node, onOpen }: { node: TreeNode; onOpen: (file: number) => void }) {
  return (
    <ul>
      {[...node.children.values()].map((child, i) =>
        child.file !== undefined ? (
          <li key={i}>
            <span className={`change-${child.type ?? ''}`}>{child.type}</span>{' '}
            <button type="button" className="link" onClick={() => onOpen(child.file ?? 0)}>
              {child.name}
            </button>
          </li>
        ) : (
          <li key={i}>
            <span className="folder">{child.name}/</span>
            <Tree node={child} onOpen={onOpen} />
          </li>
        ),
      )}
    </ul>
  );
}

/**
 * A git diff: a list of its files, then each file's hunks (react-diff-view renders them as text),
 * unified or split. A diff the parser cannot read is shown as plain text.
 */
/** A file's diff longer than this many lines is collapsed behind "Show N lines". */
export const FILE_LINE_CAP = 1000;

function changedLines(file: { hunks: readonly { changes: readonly unknown[] }[] }): number {
  return file.hunks.reduce((n, hunk) => n + hunk.changes.length, 0);
}

export function DiffView({ diff: raw, label }: { diff: string; label: string }) {
  const [view, setView] = useState<'unified' | 'split'>('unified');
  // Bidi and invisible control characters in names and lines are shown as <U+XXXX> tokens.
  const diff = useMemo(() => revealControls(raw), [raw]);
  const files = useMemo(() => {
    try {
      return parseDiff(diff);
    } catch {
      return undefined;
    }
  }, [diff]);
  const fileRefs = useRef<(HTMLDivElement | null)[]>([]);
  // Files over FILE_LINE_CAP lines stay collapsed until opened: a huge diff renders quickly.
  const [opened, setOpened] = useState<Set<number>>(new Set());
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
      <nav className="file-tree" aria-label="Changed files">
        <Tree
          node={treeOf(files.map((f) => ({ path: name(f), type: f.type })))}
          onOpen={(i) => fileRefs.current[i]?.scrollIntoView({ block: 'start' })}
        />
      </nav>
      {files.map((file, i) => (
        <div
          className="diff-file"
          key={i}
          ref={(element) => {
            fileRefs.current[i] = element;
          }}
        >
          <h4 className="diff-file-name">{name(file)}</h4>
          {file.hunks.length === 0 ? (
            <p className="sub">No text changes (binary or mode only).</p>
          ) : !opened.has(i) && changedLines(file) > FILE_LINE_CAP ? (
            <button type="button" onClick={() => setOpened(new Set(opened).add(i))}>
              Show {changedLines(file)} lines
            </button>
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

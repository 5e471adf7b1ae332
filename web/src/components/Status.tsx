/** A status word, the same words as the API and the CLI. */
export function Status({ value }: { value: string }) {
  return <span className={`status status-${value}`}>{value}</span>;
}

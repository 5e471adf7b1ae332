import { Link } from 'react-router';

/** Also what a task or environment the user may not see shows: its existence is not revealed. */
export function NotFoundPage() {
  return (
    <section>
      <h1>Not found</h1>
      <p>There is nothing here, or you may not see it.</p>
      <p>
        <Link to="/tasks">Back to the tasks</Link>
      </p>
    </section>
  );
}

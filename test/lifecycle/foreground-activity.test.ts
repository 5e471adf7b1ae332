import { describe, expect, it } from 'vitest';
import { ForegroundActivity } from '../../src/lifecycle/foreground-activity.js';

describe('ForegroundActivity', () => {
  it('is quiet at once when no attempt is running', async () => {
    const activity = new ForegroundActivity();
    const start = Date.now();
    await activity.quiet(5_000);
    expect(Date.now() - start).toBeLessThan(1_000);
  });

  it('waits until the last running attempt has its result; ending twice counts once', async () => {
    const activity = new ForegroundActivity();
    const endA = activity.begin();
    const endB = activity.begin();
    let quiet = false;
    const waiting = activity.quiet(60_000).then(() => (quiet = true));
    endA();
    endA();
    await new Promise((r) => setTimeout(r, 20));
    expect(quiet).toBe(false);
    expect(activity.running).toBe(1);
    endB();
    await waiting;
    expect(quiet).toBe(true);
    expect(activity.running).toBe(0);
  });

  it('stops waiting after its bound when attempts keep running', async () => {
    const activity = new ForegroundActivity();
    activity.begin();
    const start = Date.now();
    await activity.quiet(100);
    expect(Date.now() - start).toBeGreaterThanOrEqual(90);
    expect(activity.running).toBe(1);
  });
});

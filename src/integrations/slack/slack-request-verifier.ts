import { verifySlackRequest } from '@slack/bolt';

/**
 * Whether an HTTP request comes from Slack: its `X-Slack-Signature` must be Slack's `v0` HMAC
 * (SHA-256, keyed with the signing secret) over `v0:TIMESTAMP:RAWBODY`, compared in constant
 * time (Bolt's verifier), and `X-Slack-Request-Timestamp` within 5 minutes of now, either way.
 *
 * Threat model. Untrusted: the whole request; anyone can reach the route. Guarantees: without
 * the signing secret nobody can make a request that passes; a captured request replays for at
 * most 5 minutes, and a replayed event starts nothing anyway (its event_id is remembered,
 * slack-integration.ts). The body is verified as the exact bytes received, before parsing.
 */

export const MAX_SKEW_SECONDS = 5 * 60;

export function isSignedBySlack(
  signingSecret: string,
  headers: { signature: string | null; timestamp: string | null },
  rawBody: string,
  nowMs = Date.now(),
): boolean {
  if (headers.signature === null || headers.timestamp === null) return false;
  if (!/^[0-9]{1,12}$/.test(headers.timestamp)) return false;
  const timestamp = Number(headers.timestamp);
  if (Math.abs(nowMs / 1000 - timestamp) > MAX_SKEW_SECONDS) return false;
  try {
    verifySlackRequest({
      signingSecret,
      body: rawBody,
      headers: { 'x-slack-signature': headers.signature, 'x-slack-request-timestamp': timestamp },
      nowMilliseconds: nowMs,
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * Cuts a text to its head and tail within `maxChars`, with a marker saying how much was left out
 * (`alreadyOmittedBytes`: what a bounded reader dropped before, counted in the marker too).
 */
export function cutMiddle(text: string, maxChars: number, alreadyOmittedBytes = 0): string {
  if (text.length <= maxChars) return text;
  const head = text.slice(0, Math.ceil(maxChars / 2));
  const tail = text.slice(text.length - Math.floor(maxChars / 2));
  const left =
    Buffer.byteLength(text.slice(head.length, text.length - tail.length)) + alreadyOmittedBytes;
  return `${head}\n[... ${left} bytes left out ...]\n${tail}`;
}

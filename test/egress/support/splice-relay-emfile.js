/* global process, console */
// Run by splice-relay.test.ts in a child process: with the descriptors nearly used up, a relay
// cannot get its pipes; relayWithSplice must refuse (the caller relays with streams), leave no
// descriptor behind, and the sockets must still carry bytes. Prints a JSON verdict.
import { openSync, closeSync, readdirSync } from 'node:fs';
import net from 'node:net';
import {
  activeSpliceRelays,
  relayWithSplice,
  resumeReading,
  takeUnread,
} from '../../../dist/egress/splice-relay.js';

async function pair(server, port) {
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const near = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((resolve) => near.once('connect', resolve));
  return [near, await accepted];
}

const server = net.createServer({ allowHalfOpen: true });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
// One relay first, so the relay thread and its epoll descriptor exist (they stay for the process).
{
  const [a, b] = await pair(server, port);
  const [c, d] = await pair(server, port);
  if (!relayWithSplice(b, c, 60_000)) throw new Error('the first relay did not start');
  for (const s of [a, b, c, d]) s.destroy();
}
const [client, clientEnd] = await pair(server, port);
const [upstreamEnd, upstream] = await pair(server, port);
upstreamEnd.pause();
// Fill the table, then free exactly three: the first pipe opens, the second cannot.
const filler = [];
for (;;) {
  try {
    filler.push(openSync('/dev/null', 'r'));
  } catch {
    break;
  }
}
for (let i = 0; i < 3; i++) closeSync(filler.pop());
const before = readdirSync('/proc/self/fd').length;
// As the proxy does: take what Node read, stop it reading, then try the relay.
takeUnread(clientEnd);
const accepted = relayWithSplice(clientEnd, upstreamEnd, 60_000);
const after = readdirSync('/proc/self/fd').length;
for (const fd of filler) closeSync(fd);
// What the proxy then does: Node reads again, and relays with streams.
resumeReading(clientEnd);
clientEnd.pipe(upstreamEnd);
upstreamEnd.pipe(clientEnd);
const received = new Promise((resolve) => {
  let text = '';
  upstream.on('data', (d) => {
    text += d;
    if (text === 'still works') resolve(text);
  });
});
client.write('still works');
const text = await received;
console.log(
  JSON.stringify({ accepted, leaked: after - before, active: activeSpliceRelays(), text }),
);
process.exit(0);

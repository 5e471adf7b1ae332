/* global process, Buffer, setInterval */
// The far ends of a tunnel that moves bytes as fast as it can, in a process of their own (so
// that the test's JavaScript thread only measures): test/egress/native-addon-lock.test.ts.
//
//   node full-speed-peers.js source <port> [connections]
//     connects to <port> (once, or `connections` times) and writes forever on each (the
//     tunnels' clients).
//   node full-speed-peers.js sink
//     listens on a port it prints as "port N" and reads everything from what connects there
//     (the upstream). Source and sink run in two processes: one process doing both would take
//     turns and leave the tunnel idle half of the time.
//   node full-speed-peers.js tls <portA> <portB> <json {key, cert, ca}>
//     connects to <portA> and is the TLS server there, writing forever after the handshake (an
//     upstream); connects to <portB> as a TLS client of leg.test and reads (the sandbox).
//
// Every 100 ms it prints "read N": the bytes its reading end received so far.
import net from 'node:net';
import tls from 'node:tls';

const [mode, ...args] = process.argv.slice(2);
const chunk = Buffer.alloc(1024 * 1024, 0x61);
let read = 0;

function writeForever(socket) {
  const pump = () => {
    while (socket.write(chunk));
  };
  socket.on('drain', pump);
  pump();
}

function count(socket) {
  socket.on('data', (data) => (read += data.length));
}

const quit = () => process.exit(0);

if (mode === 'source') {
  for (let i = 0; i < Number(args[1] ?? 1); i++) {
    const source = net.connect(Number(args[0]), '127.0.0.1');
    source.on('error', quit);
    source.on('connect', () => writeForever(source));
  }
} else if (mode === 'sink') {
  const sink = net.createServer((socket) => {
    socket.on('error', quit);
    count(socket);
  });
  sink.listen(0, '127.0.0.1', () => process.stdout.write(`port ${sink.address().port}\n`));
} else if (mode === 'tls') {
  const { key, cert, ca } = JSON.parse(args[2]);
  const raw = net.connect(Number(args[0]), '127.0.0.1');
  const upstream = new tls.TLSSocket(raw, {
    isServer: true,
    key,
    cert,
    ALPNProtocols: ['http/1.1'],
  });
  upstream.on('error', quit);
  upstream.on('secure', () => writeForever(upstream));
  const sandbox = tls.connect({
    host: '127.0.0.1',
    port: Number(args[1]),
    servername: 'leg.test',
    ca,
    ALPNProtocols: ['http/1.1'],
  });
  sandbox.on('error', quit);
  count(sandbox);
} else {
  process.stderr.write(
    'usage: full-speed-peers.js source <port> | sink | tls <portA> <portB> <json>\n',
  );
  process.exit(2);
}
setInterval(() => process.stdout.write(`read ${read}\n`), 100);

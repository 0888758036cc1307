/**
 * The container every pod of the NetworkPolicy truth table runs (upstream's
 * netpol e2e runs agnhost `serve-hostname` per port and protocol): TCP and
 * UDP on ports 80 and 81, each answering with the pod's `<namespace>/<name>`
 * (POD_NAMESPACE, POD_NAME), so a prober knows which pod it reached. TCP
 * writes the name and closes; UDP sends it back to each datagram's sender.
 * No SCTP: this kernel is built without CONFIG_IP_SCTP.
 *
 *   node policy-server.js        (inside the pod's network namespace)
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const ports = [80, 81];
const identity = `${process.env.POD_NAMESPACE ?? ''}/${process.env.POD_NAME ?? ''}`;

function fail(error: Error): never {
  process.stderr.write(`policy-server ${identity}: ${error.message}\n`);
  process.exit(1);
}

for (const port of ports) {
  const tcp = createServer((socket) => {
    socket.on('error', () => {
      // A prober that gave up (its timeout) resets the connection: nothing to do.
    });
    socket.end(`${identity}\n`);
  });
  tcp.on('error', fail);
  tcp.listen(port, '0.0.0.0');

  const udp = createSocket('udp4');
  udp.on('error', fail);
  udp.on('message', (_message, sender) => {
    udp.send(`${identity}\n`, sender.port, sender.address);
  });
  udp.bind(port, '0.0.0.0');
}

process.stdout.write(`policy-server ${identity}: TCP and UDP ${ports.join(', ')}\n`);
process.on('SIGTERM', () => process.exit(0));

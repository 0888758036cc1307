/**
 * The CNI plugin executable. One binary serves both plugin types: invoked
 * under a name containing "ipam" (dist/bin/strata-ipam) it is the IPAM
 * plugin, otherwise the bridge plugin strata-cni.
 */
import { bridgePlugin } from '../cni/bridge/plugin.js';
import { processIo, runPlugin } from '../cni/skel.js';
import { ipamPlugin } from '../ipam/plugin.js';

const invokedAs = baseName(
  process.argv[1] && !process.versions.bun ? process.argv[1] : process.execPath,
);
function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

const plugin = invokedAs.includes('ipam') ? ipamPlugin : bridgePlugin;

runPlugin(plugin, processIo).then(
  (code) => {
    // Exit at once: the answer is written, and letting the runtime wind down
    // on its own costs milliseconds on every call.
    process.exit(code);
  },
  (error: unknown) => {
    processIo.writeStderr(`strata-cni: ${String(error)}\n`);
    process.exitCode = 1;
  },
);

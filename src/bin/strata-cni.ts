/**
 * The CNI plugin executable. One binary serves both plugin types: invoked
 * under a name containing "ipam" (dist/bin/strata-ipam) it is the IPAM
 * plugin, otherwise the bridge plugin strata-cni.
 */
import { basename } from 'node:path';
import { bridgePlugin } from '../cni/bridge/plugin.js';
import { processIo, runPlugin } from '../cni/skel.js';
import { ipamPlugin } from '../ipam/plugin.js';

const invokedAs = basename(
  process.argv[1] && !process.versions.bun ? process.argv[1] : process.execPath,
);
const plugin = invokedAs.includes('ipam') ? ipamPlugin : bridgePlugin;

runPlugin(plugin, processIo).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    processIo.writeStderr(`strata-cni: ${String(error)}\n`);
    process.exitCode = 1;
  },
);

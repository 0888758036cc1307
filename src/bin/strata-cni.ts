/**
 * The CNI plugin executable. One binary serves both plugin types: invoked
 * under a name containing "ipam" (dist/bin/strata-ipam) it is the IPAM
 * plugin, otherwise the bridge plugin strata-cni.
 */
import { bridgePlugin } from '../cni/bridge/plugin.js';
import { processIo, runPlugin } from '../cni/skel.js';
import { ipamPlugin } from '../ipam/plugin.js';
import { loadedLibc } from '../kernel/libc.js';

const invokedAs = baseName(
  process.argv[1] && !process.versions.bun ? process.argv[1] : process.execPath,
);
function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

const plugin = invokedAs.includes('ipam') ? ipamPlugin : bridgePlugin;

runPlugin(plugin, processIo).then(
  (code) => {
    // The answer is written (synchronously). When libc is loaded anyway, end
    // with _exit and skip the runtime's teardown, a few tenths of a millisecond.
    loadedLibc()?.exit(code);
    process.exitCode = code;
  },
  (error: unknown) => {
    processIo.writeStderr(`strata-cni: ${String(error)}\n`);
    process.exitCode = 1;
  },
);

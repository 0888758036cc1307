/**
 * The CNI plugin executable. One binary serves both plugin types: invoked
 * under a name containing "ipam" (dist/bin/strata-ipam) it is the IPAM
 * plugin, otherwise the bridge plugin strata-cni.
 */
import { bridgePlugin } from '../cni/bridge/plugin.js';
import { processIo, runPlugin } from '../cni/skel.js';
import { ipamPlugin } from '../ipam/plugin.js';
import { loadedLibc } from '../kernel/libc.js';

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

// The name it was run under: in the compiled executable argv0 (execPath resolves
// symlinks, so a symlink named strata-ipam would look like strata-cni), under
// Node the script's path.
const invokedAs = baseName(process.versions.bun ? process.argv0 : (process.argv[1] ?? ''));

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

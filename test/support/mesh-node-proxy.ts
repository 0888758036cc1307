/**
 * A node's mesh proxy for test/e2e/mesh-proxy.test.ts, run inside a node
 * namespace: it applies the capture table and policy routing
 * (src/mesh/proxy/capture.ts), then runs a NodeProxy over a static workload
 * index, with workload certificates signed by a CA in a temporary directory.
 *
 * The configuration comes as JSON in MESH_PROXY_CONFIG. On stdin it takes
 * one JSON command per line: `{"policies": {"peerAuthentications": [...],
 * "authorizationPolicies": [...]}}` replaces the policies; `{"status": 1}`
 * prints the proxy's status. It prints one JSON line per event:
 * `{"ready": ...}`, `{"status": ...}`, `{"applied": n}`, `{"error": ...}`.
 */
import { createInterface } from 'node:readline';
import type { KubeObject } from '../../src/api/types.js';
import { NftRunner } from '../../src/kernel/libnftables.js';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';
import { formatSpiffeId, type SpiffeId } from '../../src/mesh/identity/spiffe.js';
import { generateWorkloadKey, type WorkloadCertificate } from '../../src/mesh/identity/workload.js';
import { applyPolicyRouting, compileCapture, renderCapture } from '../../src/mesh/proxy/capture.js';
import { NodeProxy, type WorkloadCertificates } from '../../src/mesh/proxy/proxy.js';
import { WorkloadIndex } from '../../src/mesh/proxy/workloads.js';

interface Config {
  nodeName: string;
  caDir: string;
  accessLogPath: string;
  pods: KubeObject[];
  namespaces: KubeObject[];
}

const config = JSON.parse(process.env.MESH_PROXY_CONFIG ?? '{}') as Config;
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

/** Certificates straight from a local CA (the agent uses CertificateManager over the CA service). */
class LocalCertificates implements WorkloadCertificates {
  readonly #held = new Map<string, Promise<WorkloadCertificate>>();
  constructor(private readonly ca: CertificateAuthority) {}

  certificateFor(identity: SpiffeId): Promise<WorkloadCertificate> {
    const id = formatSpiffeId(identity);
    let held = this.#held.get(id);
    if (held === undefined) {
      held = (async () => {
        const key = await generateWorkloadKey();
        const issued = await this.ca.sign(await key.createCsr(identity), identity);
        return { ...issued, privateKeyPem: key.privateKeyPem };
      })();
      this.#held.set(id, held);
    }
    return held;
  }

  trustBundle(): Promise<string> {
    return Promise.resolve(this.ca.trustBundlePem());
  }
}

const index = WorkloadIndex.from({ pods: config.pods, namespaces: config.namespaces });
const nft = new NftRunner();
const enrolled = index.enrolledOn(config.nodeName).map((w) => w.ip);
await nft.apply(renderCapture(compileCapture({ enrolled })));
await applyPolicyRouting([4]);
const ca = await CertificateAuthority.open({ dir: config.caDir });
const proxy = new NodeProxy({
  nodeName: config.nodeName,
  workloads: index,
  certificates: new LocalCertificates(ca),
  accessLogPath: config.accessLogPath,
  log: (line) => process.stderr.write(`${line}\n`),
});
await proxy.start();
print({ ready: { enrolled } });

let policyObjects: KubeObject[] = [];
createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const command = JSON.parse(line) as {
      status?: unknown;
      policies?: { peerAuthentications?: KubeObject[]; authorizationPolicies?: KubeObject[] };
    };
    if (command.policies !== undefined) {
      for (const old of policyObjects) {
        if (old.kind === 'PeerAuthentication') index.deletePeerAuthentication(old);
        else index.deleteAuthorizationPolicy(old);
      }
      const pas = command.policies.peerAuthentications ?? [];
      const aps = command.policies.authorizationPolicies ?? [];
      for (const pa of pas) index.upsertPeerAuthentication(pa);
      for (const ap of aps) index.upsertAuthorizationPolicy(ap);
      policyObjects = [...pas, ...aps];
      print({ applied: policyObjects.length });
    }
    if (command.status !== undefined) print({ status: proxy.status() });
  } catch (error) {
    print({ error: String(error) });
  }
});

const shutdown = () => {
  void proxy.stop().finally(async () => {
    await nft.close();
    process.exit(0);
  });
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

// How the CA service is set up: the node tokens `strata up` writes (the
// token only in the node's file, only its digest for the controller), an
// operator's plug-in CA copied in, the controller's CA flags, and the
// controller serving the CA from its pod informer once it runs.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { planCluster } from '../../src/cluster/config.js';
import { caServiceConfig } from '../../src/controller/config.js';
import { controllerCommand } from '../../src/controller/command.js';
import { installPlugInCa, PlugInCaError } from '../../src/mesh/ca-service/plug-in.js';
import {
  bearerToken,
  nodeOfToken,
  parseNodeTokens,
  provisionNodeTokens,
} from '../../src/mesh/ca-service/tokens.js';
import { CertificateManager } from '../../src/mesh/certificates/manager.js';
import { CertificateRefusedError } from '../../src/mesh/certificates/errors.js';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';
import { x509, subtle, toPem, type CryptoKeyPair } from '../../src/mesh/identity/x509.js';
import { TestCluster, eventually, pod } from '../support/controller-cluster.js';

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-mesh-ca-setup-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe('node tokens', () => {
  it("give each node a random token in its own 0600 file, and the controller only the tokens' SHA-256", async () => {
    const dir = join(scratch, 'tokens');
    const tokensFile = join(dir, 'ca', 'node-tokens.json');
    const tokenFile = (node: string): string => join(dir, 'nodes', node, 'ca-token');
    await provisionNodeTokens({ nodes: ['node-1', 'node-2'], tokensFile, tokenFile });

    const tokens = await Promise.all(
      ['node-1', 'node-2'].map(async (node) => (await readFile(tokenFile(node), 'utf8')).trim()),
    );
    for (const [i, token] of tokens.entries()) {
      assert.match(token, /^[A-Za-z0-9_-]{43}$/, 'a 32-byte token in base64url');
      assert.equal(await mode(tokenFile(`node-${i + 1}`)), 0o600);
    }
    assert.notEqual(tokens[0], tokens[1]);
    assert.equal(await mode(tokensFile), 0o600);
    const text = await readFile(tokensFile, 'utf8');
    const sha256 = (token: string): string => createHash('sha256').update(token).digest('hex');
    assert.deepEqual(JSON.parse(text), {
      'node-1': sha256(tokens[0] ?? ''),
      'node-2': sha256(tokens[1] ?? ''),
    });
    for (const token of tokens) assert.ok(!text.includes(token), 'a token in the controller file');

    const digests = parseNodeTokens(text, tokensFile);
    assert.equal(nodeOfToken(digests, tokens[1] ?? ''), 'node-2');
    assert.equal(nodeOfToken(digests, `${tokens[1] ?? ''}x`), undefined);
    assert.equal(nodeOfToken(digests, ''), undefined);
  });

  it('refuse a node-tokens.json entry that is not a SHA-256 digest, naming the node', () => {
    assert.throws(() => parseNodeTokens('{"node-1": "secret"}', '/x/node-tokens.json'), {
      code: 'STRATA_ERR_NODE_TOKENS',
      message:
        '/x/node-tokens.json: the entry of node "node-1" must be a SHA-256 digest in 64 lowercase hex digits',
    });
    assert.throws(() => parseNodeTokens('[]', 'f'), /must hold a JSON object/);
  });

  it('are read from "Authorization: Bearer <token>" only', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer abc'), 'abc');
    assert.equal(bearerToken('Basic abc'), undefined);
    assert.equal(bearerToken('Bearer'), undefined);
    assert.equal(bearerToken('Bearer a b'), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });
});

async function makeCa(name: string, issuer?: { name: string; keys: CryptoKeyPair }) {
  const keys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const cert = await x509.X509CertificateGenerator.create({
    subject: name,
    issuer: issuer?.name ?? name,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 365 * 24 * 3600_000),
    publicKey: keys.publicKey,
    signingKey: (issuer?.keys ?? keys).privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, keys, pem: `${cert.toString('pem')}\n` };
}

describe('strata up --plugin-ca', () => {
  it("copies Istio's four files into the CA directory, the key 0600, and the CA opens them", async () => {
    const source = join(scratch, 'cacerts');
    await mkdir(source);
    const root = await makeCa('CN=Operator Root');
    const intermediate = await makeCa('CN=Cluster Intermediate', root);
    const key = toPem(await subtle.exportKey('pkcs8', intermediate.keys.privateKey), 'PRIVATE KEY');
    await writeFile(join(source, 'root-cert.pem'), root.pem);
    await writeFile(join(source, 'ca-cert.pem'), intermediate.pem);
    await writeFile(join(source, 'cert-chain.pem'), intermediate.pem + root.pem);
    await writeFile(join(source, 'ca-key.pem'), key, { mode: 0o644 });
    const caDir = join(scratch, 'state', 'ca');
    await installPlugInCa(source, caDir);
    assert.equal(await mode(caDir), 0o700);
    assert.equal(await mode(join(caDir, 'ca-key.pem')), 0o600);
    assert.equal(await mode(join(caDir, 'root-cert.pem')), 0o644);
    const ca = await CertificateAuthority.open({ dir: caDir });
    assert.equal(ca.source, 'plug-in');
    assert.equal(ca.trustBundlePem().trim(), root.pem.trim());
  });

  it('names the files a plug-in directory lacks', async () => {
    const source = join(scratch, 'half');
    await mkdir(source);
    await writeFile(join(source, 'ca-cert.pem'), 'x');
    await assert.rejects(installPlugInCa(source, join(scratch, 'half-ca')), (error: unknown) => {
      assert.ok(error instanceof PlugInCaError);
      assert.match(error.message, /lacks ca-key\.pem, root-cert\.pem, cert-chain\.pem/);
      return true;
    });
  });
});

describe('CA flags', () => {
  it('leave the CA service off without --ca-dir, and refuse its other flags alone', () => {
    assert.equal(caServiceConfig({}), undefined);
    assert.throws(() => caServiceConfig({ caSocket: '/s/ca.sock' }), {
      code: 'STRATA_ERR_CONTROLLER_CONFIG',
      message: '--ca-socket needs --ca-dir (the CA service is off without it)',
    });
  });

  it('put the socket beside the CA directory and the node tokens inside it by default', () => {
    assert.deepEqual(caServiceConfig({ caDir: '/var/lib/strata/default/ca' }), {
      caDir: '/var/lib/strata/default/ca',
      socketPath: '/var/lib/strata/default/ca.sock',
      nodeTokensFile: '/var/lib/strata/default/ca/node-tokens.json',
    });
    assert.deepEqual(
      caServiceConfig({
        caDir: '/d/ca',
        caSocket: '/run/ca.sock',
        nodeTokens: '/etc/tokens.json',
        trustDomain: 'corp.example',
      }),
      {
        caDir: '/d/ca',
        socketPath: '/run/ca.sock',
        nodeTokensFile: '/etc/tokens.json',
        trustDomain: 'corp.example',
      },
    );
  });

  it('refuse a trust domain that is not a SPIFFE one, in the controller and in strata up', async () => {
    assert.throws(() => caServiceConfig({ caDir: '/d/ca', trustDomain: 'Cluster.Local' }), {
      message: /^--trust-domain "Cluster.Local": trustDomain must be lowercase letters/,
    });
    assert.throws(() => planCluster({ trustDomain: 'a/b' }), {
      code: 'STRATA_ERR_CLUSTER_OPTION',
      message: /^--trust-domain "a\/b": trustDomain must be lowercase letters/,
    });
    const err: string[] = [];
    const sink = { write: (text: string) => err.push(text) } as unknown as NodeJS.WritableStream;
    const code = await controllerCommand(
      ['--api', '/nowhere.sock', '--trust-domain', 'x y'],
      sink,
      sink,
    );
    assert.equal(code, 2);
    assert.match(err.join(''), /--trust-domain needs --ca-dir/);
  });
});

describe('the controller with --ca-dir', { timeout: 20_000 }, () => {
  it('serves the CA from its pod informer: a node obtains its pods’ identities only', async () => {
    const dir = join(scratch, 'controller');
    const caDir = join(dir, 'ca');
    const tokenFile = (node: string): string => join(dir, 'nodes', node, 'ca-token');
    const nodeTokensFile = join(caDir, 'node-tokens.json');
    await provisionNodeTokens({
      nodes: ['node-1', 'node-2'],
      tokensFile: nodeTokensFile,
      tokenFile,
    });
    const socketPath = join(dir, 'ca.sock');
    const cluster = new TestCluster({
      controllers: ['scheduler'],
      ca: { caDir, socketPath, nodeTokensFile },
    });
    const managers: CertificateManager[] = [];
    try {
      await cluster.startApi();
      await cluster.client.create(
        pod('web-1', {}, { nodeName: 'node-2', serviceAccountName: 'web' }),
      );
      await cluster.startController();
      assert.equal(await mode(socketPath), 0o600);
      assert.ok(
        cluster.logs.some((line) =>
          /^ca: serving self-signed CA for trust domain cluster\.local/.test(line),
        ),
      );
      const forNode = (node: string): CertificateManager => {
        const manager = new CertificateManager({
          caSocket: socketPath,
          tokenFile: tokenFile(node),
          trustDomain: 'cluster.local',
          log: () => undefined,
        });
        managers.push(manager);
        return manager;
      };
      const web = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' };
      await assert.rejects(forNode('node-1').certificateFor(web), CertificateRefusedError);
      assert.deepEqual((await forNode('node-2').certificateFor(web)).identity, web);
      // A pod created later counts as soon as the API server has it.
      await cluster.client.create(
        pod('web-2', {}, { nodeName: 'node-1', serviceAccountName: 'web' }),
      );
      const cert = await eventually('node-1 to obtain web', () =>
        forNode('node-1')
          .certificateFor(web)
          .catch(() => undefined),
      );
      assert.deepEqual(cert.identity, web);
      assert.ok(
        cluster.logs.some((line) =>
          line.startsWith('ca: issued spiffe://cluster.local/ns/default/sa/web to node "node-2"'),
        ),
      );
    } finally {
      for (const manager of managers) manager.close();
      await cluster.stop();
    }
    // Stopping the controller stops the service.
    await assert.rejects(stat(socketPath), { code: 'ENOENT' });
  });
});

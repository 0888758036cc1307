// Realistic manifests of every kind strata serves, most taken from the
// upstream documentation's examples, and the steps the API server runs on a
// manifest (defaults, then validation), for the api-validation tests.
import assert from 'node:assert/strict';
import { resourceForKind } from '../../src/api/registry.js';
import type { FieldError, KubeObject } from '../../src/api/types.js';

export type Manifest = Record<string, unknown>;

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Runs a manifest through the server's steps: defaults, then validation. */
export function admit(
  manifest: Manifest,
  old?: Manifest,
): { object: KubeObject; errors: FieldError[] } {
  const object = clone(manifest) as KubeObject;
  const resource = resourceForKind(object.apiVersion, object.kind);
  assert.ok(resource, `test setup: ${object.apiVersion} ${object.kind} is served`);
  resource.applyDefaults(object);
  let oldObject: KubeObject | undefined;
  if (old) {
    oldObject = clone(old) as KubeObject;
    resource.applyDefaults(oldObject);
  }
  return { object, errors: resource.validate(object, oldObject) };
}

/** The segments of a field path: `spec.ports[0].port` → spec, ports, 0, port; `labels[a/b]` keeps the key. */
function segments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[([^\]]*)\]/g)) {
    if (m[1] !== undefined) out.push(m[1]);
    else out.push(/^\d+$/.test(m[2] ?? '') ? Number(m[2]) : (m[2] ?? ''));
  }
  return out;
}

export function get(object: unknown, path: string): unknown {
  let at: unknown = object;
  for (const s of segments(path)) at = (at as Record<string | number, unknown> | undefined)?.[s];
  return at;
}

/** A copy of `manifest` with each path set (undefined deletes it). */
export function change(manifest: Manifest, changes: Record<string, unknown>): Manifest {
  const copy = clone(manifest);
  for (const [path, value] of Object.entries(changes)) {
    const parts = segments(path);
    const last = parts.pop() ?? '';
    let at = copy as Record<string | number, unknown>;
    for (const [i, s] of parts.entries()) {
      const next = i + 1 < parts.length ? parts[i + 1] : last;
      at[s] ??= typeof next === 'number' ? [] : {};
      at = at[s] as Record<string | number, unknown>;
    }
    if (value === undefined) Reflect.deleteProperty(at, last);
    else at[last] = value;
  }
  return copy;
}

/** Errors as "field Type", sorted, for comparing with a table row. */
export function problems(errors: FieldError[]): string[] {
  return errors.map((e) => `${e.field} ${e.type}`).sort();
}

const meta = (name: string, namespace?: string) => (namespace ? { name, namespace } : { name });

// Realistic manifests, most taken from the upstream documentation's examples.
export const examples = {
  namespace: { apiVersion: 'v1', kind: 'Namespace', metadata: meta('production') },
  node: {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: meta('node-1'),
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
  },
  pod: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } },
    spec: {
      containers: [
        {
          name: 'nginx',
          image: 'nginx:1.27',
          command: ['nginx'],
          args: ['-g', 'daemon off;'],
          workingDir: '/srv',
          ports: [
            { name: 'http', containerPort: 80 },
            { name: 'dns', containerPort: 53, protocol: 'UDP' },
          ],
          env: [
            { name: 'MODE', value: 'prod' },
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            {
              name: 'POD_IP',
              valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } },
            },
          ],
          readinessProbe: {
            httpGet: { path: '/healthz', port: 'http' },
            initialDelaySeconds: 3,
            periodSeconds: 3,
          },
          livenessProbe: { tcpSocket: { port: 80 } },
          startupProbe: { exec: { command: ['cat', '/tmp/ready'] }, failureThreshold: 30 },
          resources: {
            requests: { cpu: '100m', memory: '128Mi' },
            limits: { cpu: 1, memory: '1Gi' },
          },
          securityContext: { allowPrivilegeEscalation: false },
        },
      ],
      restartPolicy: 'Always',
      nodeName: 'node-1',
      serviceAccountName: 'web',
      terminationGracePeriodSeconds: 10,
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'example', operator: 'Exists' }],
    },
  },
  service: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta('my-service', 'default'),
    spec: {
      selector: { 'app.kubernetes.io/name': 'MyApp' },
      ports: [{ protocol: 'TCP', port: 80, targetPort: 9376 }],
    },
  },
  multiPortService: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta('web'),
    spec: {
      type: 'NodePort',
      selector: { app: 'web' },
      ports: [
        { name: 'http', port: 80, targetPort: 'http', nodePort: 30080 },
        { name: 'https', port: 443, targetPort: 8443 },
      ],
      sessionAffinity: 'ClientIP',
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
    },
  },
  headlessService: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta('db'),
    spec: { clusterIP: 'None', selector: { app: 'db' } },
  },
  endpointSlice: {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'example-abc', labels: { 'kubernetes.io/service-name': 'example' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
    endpoints: [
      {
        addresses: ['10.1.2.3'],
        conditions: { ready: true },
        hostname: 'pod-1',
        nodeName: 'node-1',
        zone: 'us-west2-a',
      },
    ],
  },
  deployment: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'nginx-deployment', labels: { app: 'nginx' } },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'nginx' } },
      template: {
        metadata: { labels: { app: 'nginx' } },
        spec: {
          containers: [{ name: 'nginx', image: 'nginx:1.14.2', ports: [{ containerPort: 80 }] }],
        },
      },
    },
  },
  // What `kubectl create deployment web --image=nginx --dry-run=client -o yaml` prints.
  kubectlDeployment: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { creationTimestamp: null, labels: { app: 'web' }, name: 'web' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      strategy: {},
      template: {
        metadata: { creationTimestamp: null, labels: { app: 'web' } },
        spec: { containers: [{ image: 'nginx', name: 'nginx', resources: {} }] },
      },
    },
    status: {},
  },
  networkPolicy: {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta('test-network-policy', 'default'),
    spec: {
      podSelector: { matchLabels: { role: 'db' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        {
          from: [
            { ipBlock: { cidr: '172.17.0.0/16', except: ['172.17.1.0/24'] } },
            { namespaceSelector: { matchLabels: { project: 'myproject' } } },
            { podSelector: { matchLabels: { role: 'frontend' } } },
          ],
          ports: [{ protocol: 'TCP', port: 6379 }],
        },
      ],
      egress: [
        {
          to: [{ ipBlock: { cidr: '10.0.0.0/24' } }],
          ports: [{ protocol: 'TCP', port: 32000, endPort: 32768 }],
        },
      ],
    },
  },
  defaultDenyEgress: {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta('default-deny-egress'),
    spec: { podSelector: {}, policyTypes: ['Egress'] },
  },
  virtualService: {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: meta('reviews-route'),
    spec: {
      hosts: ['reviews.prod.svc.cluster.local'],
      http: [
        {
          name: 'reviews-v2-routes',
          match: [
            { uri: { prefix: '/wpcatalog' } },
            { headers: { 'end-user': { exact: 'jason' } } },
          ],
          rewrite: { uri: '/newcatalog' },
          route: [{ destination: { host: 'reviews.prod.svc.cluster.local', subset: 'v2' } }],
          retries: {
            attempts: 3,
            perTryTimeout: '2s',
            retryOn: 'connect-failure,refused-stream,503',
          },
          timeout: '10s',
        },
        {
          name: 'reviews-v1-route',
          fault: {
            delay: { percentage: { value: 0.1 }, fixedDelay: '5s' },
            abort: { percentage: { value: 10 }, httpStatus: 400 },
          },
          route: [
            { destination: { host: 'reviews.prod.svc.cluster.local', subset: 'v1' }, weight: 75 },
            {
              destination: {
                host: 'reviews.prod.svc.cluster.local',
                subset: 'v3',
                port: { number: 9080 },
              },
              weight: 25,
            },
          ],
        },
      ],
      tcp: [
        {
          match: [{ port: 27017 }],
          route: [
            { destination: { host: 'mongo.backup.svc.cluster.local', port: { number: 5555 } } },
          ],
        },
      ],
    },
  },
  destinationRule: {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: meta('bookinfo-ratings'),
    spec: {
      host: 'ratings.prod.svc.cluster.local',
      trafficPolicy: {
        loadBalancer: { simple: 'LEAST_REQUEST' },
        connectionPool: {
          tcp: { maxConnections: 100, connectTimeout: '30ms' },
          http: { http2MaxRequests: 1000, maxRequestsPerConnection: 10 },
        },
        outlierDetection: { consecutive5xxErrors: 7, interval: '5m', baseEjectionTime: '15m' },
        tls: { mode: 'ISTIO_MUTUAL' },
      },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        {
          name: 'testversion',
          labels: { version: 'v3' },
          trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
        },
      ],
    },
  },
  istioGateway: {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: meta('my-gateway', 'some-config-namespace'),
    spec: {
      selector: { app: 'my-gateway-controller' },
      servers: [
        {
          port: { number: 80, name: 'http', protocol: 'HTTP' },
          hosts: ['uk.bookinfo.com', 'eu.bookinfo.com'],
          tls: { httpsRedirect: true },
        },
        {
          port: { number: 443, name: 'https-443', protocol: 'HTTPS' },
          hosts: ['uk.bookinfo.com'],
          tls: { mode: 'SIMPLE', credentialName: 'bookinfo-secret' },
        },
        {
          port: { number: 9443, name: 'https-9443', protocol: 'HTTPS' },
          hosts: ['bookinfo-namespace/*.bookinfo.com'],
          tls: {
            mode: 'SIMPLE',
            serverCertificate: '/etc/certs/server.pem',
            privateKey: '/etc/certs/key.pem',
          },
        },
      ],
    },
  },
  peerAuthentication: {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: meta('finance', 'foo'),
    spec: {
      selector: { matchLabels: { app: 'finance' } },
      mtls: { mode: 'STRICT' },
      portLevelMtls: { 8080: { mode: 'DISABLE' } },
    },
  },
  authorizationPolicy: {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: meta('httpbin', 'foo'),
    spec: {
      selector: { matchLabels: { app: 'httpbin', version: 'v1' } },
      action: 'ALLOW',
      rules: [
        {
          from: [
            { source: { principals: ['cluster.local/ns/default/sa/sleep'] } },
            { source: { namespaces: ['dev'], ipBlocks: ['10.0.0.0/16'] } },
          ],
          to: [{ operation: { methods: ['GET'], paths: ['/info*'], ports: ['8080'] } }],
          when: [
            { key: 'request.auth.claims[iss]', values: ['https://accounts.google.com'] },
            { key: 'source.ip', notValues: ['10.1.2.3'] },
          ],
        },
      ],
    },
  },
  // The documentation's "allow nothing" policy: an ALLOW policy that matches no request.
  allowNothing: {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: meta('allow-nothing', 'foo'),
    spec: {},
  },
  customAuthorizationPolicy: {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: meta('ext-authz'),
    spec: {
      action: 'CUSTOM',
      provider: { name: 'my-ext-authz' },
      rules: [{ to: [{ operation: { paths: ['/admin'] } }] }],
    },
  },
  requestAuthentication: {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: meta('jwt-example', 'istio-system'),
    spec: {
      selector: { matchLabels: { istio: 'ingressgateway' } },
      jwtRules: [
        {
          issuer: 'issuer-foo',
          jwksUri: 'https://example.com/.well-known/jwks.json',
          fromHeaders: [{ name: 'x-jwt-assertion' }],
          forwardOriginalToken: true,
        },
      ],
    },
  },
  gateway: {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: meta('prod-web'),
    spec: {
      gatewayClassName: 'example',
      listeners: [
        {
          name: 'http',
          protocol: 'HTTP',
          port: 80,
          allowedRoutes: { namespaces: { from: 'Same' } },
        },
        {
          name: 'https',
          protocol: 'HTTPS',
          port: 443,
          hostname: '*.example.com',
          tls: { certificateRefs: [{ name: 'example-com-cert' }] },
        },
      ],
    },
  },
  httpRoute: {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: meta('bar-route'),
    spec: {
      parentRefs: [{ name: 'example-gateway' }],
      hostnames: ['bar.example.com'],
      rules: [
        {
          matches: [{ headers: [{ type: 'Exact', name: 'env', value: 'canary' }] }],
          backendRefs: [{ name: 'bar-svc-canary', port: 8080 }],
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/api' }, method: 'GET' }],
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: { add: [{ name: 'my-header', value: 'foo' }] },
            },
          ],
          backendRefs: [
            { name: 'bar-svc', port: 8080, weight: 90 },
            { name: 'bar-svc-v2', port: 8080, weight: 10 },
          ],
          timeouts: { request: '10s', backendRequest: '2s' },
        },
      ],
    },
  },
} satisfies Record<string, Manifest>;

export type Example = keyof typeof examples;

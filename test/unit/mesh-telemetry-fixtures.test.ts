// Shared by the mesh telemetry tests: bookinfo's productpage calling reviews,
// as the node proxies would describe the two ends.
import type {
  ConnectionOpen,
  DestinationService,
  TrafficWorkload,
} from '../../src/mesh/telemetry/metrics.js';

export const productpage: TrafficWorkload = {
  pod: 'productpage-v1-7f4669bdd9-dg7vn',
  namespace: 'bookinfo',
  workload: 'productpage-v1',
  canonicalService: 'productpage',
  canonicalRevision: 'v1',
  identity: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage',
};

export const reviews: TrafficWorkload = {
  pod: 'reviews-v2-5b9f6d9c7b-x7k2p',
  namespace: 'bookinfo',
  workload: 'reviews-v2',
  canonicalService: 'reviews',
  canonicalRevision: 'v2',
  identity: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews',
};

export const reviewsService: DestinationService = {
  hostname: 'reviews.bookinfo.svc.cluster.local',
  name: 'reviews',
  namespace: 'bookinfo',
};

/** productpage → reviews over HBONE, as the destination's proxy reports it. */
export const inboundMtls: ConnectionOpen = {
  reporter: 'destination',
  source: productpage,
  destination: reviews,
  destinationService: reviewsService,
  security: 'mutual_tls',
  sourceAddress: '10.244.1.7:43122',
  destinationAddress: '10.244.2.9:15008',
  hboneAddress: '10.244.2.9:9080',
};

/** The same connection as the source's proxy reports it. */
export const outboundMtls: ConnectionOpen = {
  ...inboundMtls,
  reporter: 'source',
};

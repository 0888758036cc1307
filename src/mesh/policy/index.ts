/**
 * The mesh's L4 policy model, pure: which pods ambient mode captures
 * (enrollment.ts), the mTLS mode in force for a workload and port
 * (peer-authentication.ts), and AuthorizationPolicy as the destination's
 * ztunnel evaluates it (authorization.ts, with its rules' conversion,
 * matching and HTTP attributes in authorization-*.ts), from inputs reduced
 * once from API objects (types.ts).
 */
export * from './types.js';
export * from './enrollment.js';
export * from './peer-authentication.js';
export * from './authorization.js';

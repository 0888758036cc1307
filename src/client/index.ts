/** The API client: what the rest of strata imports. */
export {
  ApiClient,
  type ApiClientOptions,
  type BindOptions,
  type DeleteOptions,
  type ListOptions,
  type ObjectOptions,
  type PatchOptions,
  type PatchType,
} from './client.js';
export { ApiError, isAlreadyExists, isConflict, isGone, isInvalid, isNotFound } from './errors.js';
export { type ResourceRef, type Selector } from './paths.js';
export type { ApiTarget } from './transport.js';
export { ResourceWatch, type WatchEvent, type WatchOptions } from './watch.js';
export {
  Informer,
  type InformerHandlers,
  SharedInformers,
  objectKey,
  splitKey,
} from './informer.js';

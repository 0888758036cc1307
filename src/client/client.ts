/**
 * ApiClient: how the controller, the node agent and the CLI talk to the API
 * server (strata's own, or a Kubernetes one over plain HTTP). Objects are
 * addressed by their ResourceType from the registry; writes take the object
 * and find its resource from apiVersion and kind. A namespaced kind without
 * a namespace means `default` for one object and every namespace for a list
 * or watch, as kubectl and client-go do.
 */
import { resourceForKind } from '../api/registry.js';
import type { KubeList, KubeObject } from '../api/types.js';
import type { Status } from '../apiserver/status.js';
import { type ResourceRef, type Selector, resourcePath, selectorText, withQuery } from './paths.js';
import { type ApiTarget, HttpTransport } from './transport.js';
import { ResourceWatch, type WatchOptions } from './watch.js';

export interface ObjectOptions {
  namespace?: string;
}

export interface ListOptions {
  /** Omitted for a namespaced kind: every namespace. */
  namespace?: string;
  labelSelector?: Selector;
  fieldSelector?: Selector;
}

export type PatchType = 'merge' | 'strategic' | 'json';

const patchMediaTypes: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
};

export interface PatchOptions extends ObjectOptions {
  /** RFC 7386 merge patch by default. */
  type?: PatchType;
  subresource?: 'status';
}

export interface DeleteOptions extends ObjectOptions {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface BindOptions extends ObjectOptions {
  /** Bind only the pod with this uid (a precondition), not one recreated under its name. */
  uid?: string;
}

export interface ApiClientOptions {
  /** How long a request (not a watch) may take; 30 s by default. */
  timeoutMs?: number;
}

const podResource: ResourceRef = {
  group: '',
  version: 'v1',
  kind: 'Pod',
  plural: 'pods',
  namespaced: true,
};

function resourceOf(object: KubeObject): ResourceRef {
  const resource = resourceForKind(object.apiVersion, object.kind);
  if (!resource) {
    throw new Error(
      `Cannot send ${object.kind} "${object.metadata.name ?? ''}": no resource serves apiVersion ${object.apiVersion} kind ${object.kind}`,
    );
  }
  return resource;
}

export class ApiClient {
  readonly #http: HttpTransport;

  /** `target`: `http://127.0.0.1:6443`, `unix:///run/strata/api.sock`, a socket path, or `{ socketPath }`. */
  constructor(target: ApiTarget, options: ApiClientOptions = {}) {
    this.#http = new HttpTransport(target, options);
  }

  #namespaceOf(resource: ResourceRef, given: string | undefined): string | undefined {
    return resource.namespaced ? (given ?? 'default') : undefined;
  }

  async #json<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const response = await this.#http.request(method, path, {
      body: body === undefined ? undefined : JSON.stringify(body),
      contentType,
    });
    return JSON.parse(response.body) as T;
  }

  get<T extends KubeObject = KubeObject>(
    resource: ResourceRef,
    name: string,
    options: ObjectOptions = {},
  ): Promise<T> {
    const namespace = this.#namespaceOf(resource, options.namespace);
    return this.#json('GET', resourcePath(resource, { namespace, name }));
  }

  list<T extends KubeObject = KubeObject>(
    resource: ResourceRef,
    options: ListOptions = {},
  ): Promise<KubeList<T>> {
    const path = withQuery(resourcePath(resource, { namespace: options.namespace }), {
      labelSelector: options.labelSelector && selectorText(options.labelSelector),
      fieldSelector: options.fieldSelector && selectorText(options.fieldSelector),
    });
    return this.#json('GET', path);
  }

  /** Creates the object in its namespace (or `options.namespace`, else `default`). */
  create<T extends KubeObject>(object: T, options: ObjectOptions = {}): Promise<T> {
    const resource = resourceOf(object);
    const namespace = this.#namespaceOf(resource, options.namespace ?? object.metadata.namespace);
    return this.#json('POST', resourcePath(resource, { namespace }), object);
  }

  /** Replaces the object; with metadata.resourceVersion set, only if it is still current (else 409). */
  update<T extends KubeObject>(object: T, options: ObjectOptions = {}): Promise<T> {
    return this.#put(object, options, undefined);
  }

  /** Replaces the object's status (the /status subresource); everything else is kept. */
  updateStatus<T extends KubeObject>(object: T, options: ObjectOptions = {}): Promise<T> {
    return this.#put(object, options, 'status');
  }

  #put<T extends KubeObject>(
    object: T,
    options: ObjectOptions,
    subresource: 'status' | undefined,
  ): Promise<T> {
    const resource = resourceOf(object);
    const namespace = this.#namespaceOf(resource, options.namespace ?? object.metadata.namespace);
    const name = object.metadata.name ?? '';
    return this.#json('PUT', resourcePath(resource, { namespace, name, subresource }), object);
  }

  patch<T extends KubeObject = KubeObject>(
    resource: ResourceRef,
    name: string,
    patch: unknown,
    options: PatchOptions = {},
  ): Promise<T> {
    const namespace = this.#namespaceOf(resource, options.namespace);
    const path = resourcePath(resource, { namespace, name, subresource: options.subresource });
    return this.#json('PATCH', path, patch, patchMediaTypes[options.type ?? 'merge']);
  }

  /**
   * Binds a pod to a node, as a scheduler does (POST pods/<name>/binding):
   * the server sets its spec.nodeName and PodScheduled=True. Rejects with a
   * 409 ApiError when the pod is already bound or being deleted.
   */
  async bind(pod: string, node: string, options: BindOptions = {}): Promise<void> {
    const namespace = options.namespace ?? 'default';
    const binding = {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: {
        name: pod,
        namespace,
        ...(options.uid === undefined ? {} : { uid: options.uid }),
      },
      target: { apiVersion: 'v1', kind: 'Node', name: node },
    };
    const path = resourcePath(podResource, { namespace, name: pod, subresource: 'binding' });
    await this.#json('POST', path, binding);
  }

  /**
   * Deletes the object. The answer is the object (marked with a
   * deletionTimestamp when a pod's graceful deletion is pending), or a
   * Status from servers that answer so.
   */
  delete<T extends KubeObject = KubeObject>(
    resource: ResourceRef,
    name: string,
    options: DeleteOptions = {},
  ): Promise<T | Status> {
    const namespace = this.#namespaceOf(resource, options.namespace);
    const body = {
      kind: 'DeleteOptions',
      apiVersion: 'v1',
      gracePeriodSeconds: options.gracePeriodSeconds,
      preconditions: options.preconditions,
    };
    return this.#json('DELETE', resourcePath(resource, { namespace, name }), body);
  }

  /**
   * Watches a collection: an async iterable of events that survives the
   * stream ending (it resumes from the last resourceVersion seen) and a 410
   * (it re-lists). See ResourceWatch.
   */
  watch<T extends KubeObject = KubeObject>(
    resource: ResourceRef,
    options: WatchOptions = {},
  ): ResourceWatch<T> {
    return new ResourceWatch<T>(this, this.#http, resource, options);
  }

  /** Closes pooled connections; open watches should be closed first. */
  close(): void {
    this.#http.close();
  }
}

import type { ClusterResources } from '../../conf/calico';

/**
 * Where tabby learns about the cluster: pools, nodes and which blocks belong to which node.
 * The cluster file is the embedded default; a distributed store implements the same interface.
 */
export interface Datastore {
  /** A short description for logs and `tabby status`, e.g. "file /etc/tabby/cluster.yaml". */
  readonly description: string;
  /** The current resources. */
  load(): Promise<ClusterResources>;
  /**
   * A token that changes whenever what `load` returns may have changed, cheap to compute
   * (a pod start compares it with what was last applied, and does nothing more when it matches).
   */
  revision(): Promise<string>;
  /**
   * True when asking for the revision costs a round trip (etcd): a pod start then trusts the node's
   * snapshot, which the agent keeps current, instead of asking.
   */
  readonly remote: boolean;
  /**
   * For a long-running process: calls `onChange` whenever what `load` returns may have changed (the
   * caller compares revisions), and `onError` when the datastore cannot be followed for a while.
   */
  watch(onChange: (reason: string) => void, onError: (e: Error) => void): Watcher;
}

export interface Watcher {
  close(): void;
}

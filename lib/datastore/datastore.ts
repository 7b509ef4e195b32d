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
}

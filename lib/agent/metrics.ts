// The agent's Prometheus metrics, through prom-client (the registry, the text format and the
// histogram buckets are its job, not ours). Loaded only by `tabby agent`, never on the pod-start path.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type ApplyKind = 'full' | 'incremental';

export class AgentMetrics {
  readonly registry = new Registry();

  readonly applyDuration = new Histogram({
    name: 'tabby_agent_apply_duration_seconds',
    help: 'Time to plan and apply the overlay, from reading the datastore to the kernel holding it.',
    labelNames: ['kind'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly applies = new Counter({
    name: 'tabby_agent_applies_total',
    help: 'Overlay applies, by kind and result.',
    labelNames: ['kind', 'result'],
    registers: [this.registry],
  });

  readonly routes = gauge(this.registry, 'tabby_agent_routes', 'Routes tabby holds in the kernel (its own protocol).');
  readonly fdbEntries = gauge(this.registry, 'tabby_agent_fdb_entries', 'Permanent FDB entries on the VXLAN device.');
  readonly neighbours = gauge(this.registry, 'tabby_agent_neighbours', 'Permanent neighbours on the VXLAN device.');
  readonly peers = gauge(this.registry, 'tabby_agent_peers', 'Other nodes with at least one block.');
  readonly ready = gauge(
    this.registry,
    'tabby_agent_ready',
    '1 while the last apply succeeded and the datastore is accepted.',
  );
  readonly lastChange = gauge(
    this.registry,
    'tabby_agent_last_datastore_change_timestamp_seconds',
    'When the agent last saw the datastore change (Unix time).',
  );
  readonly lastApply = gauge(
    this.registry,
    'tabby_agent_last_apply_timestamp_seconds',
    'When the last apply succeeded (Unix time).',
  );

  readonly driftRepairs = new Counter({
    name: 'tabby_agent_drift_repairs_total',
    help: 'Kernel objects a resync found missing or wrong, and put back.',
    registers: [this.registry],
  });

  readonly datastoreErrors = new Counter({
    name: 'tabby_agent_datastore_errors_total',
    help: 'Failed reads of the datastore (unreadable, or invalid).',
    registers: [this.registry],
  });

  readonly refusedReads = new Counter({
    name: 'tabby_agent_refused_reads_total',
    help: 'Datastore reads refused (no pool, this node missing, invalid): the dataplane stayed as applied.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tabby_agent_' });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function gauge(registry: Registry, name: string, help: string): Gauge {
  return new Gauge({ name, help, registers: [registry] });
}

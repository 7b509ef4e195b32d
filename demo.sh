#!/usr/bin/env bash
# tabby's main job, for real: builds dist/tabby, then simulates three nodes on two subnets (network
# namespaces behind a bridge and a router), runs tabby on each with one VXLAN CrossSubnet, natOutgoing
# pool, starts a pod per node and prints which pod pairs reach each other, which paths were
# encapsulated, and how an external host sees them. Twice:
#   1. the cluster in a file: a Calico cluster file that every node reads (test/demo/multinode.ts);
#   2. the cluster in etcd: a local etcd (Debian's etcd-server, /usr/bin/etcd, with a data directory of
#      its own) runs in the simulated router; Calico's documented pool is applied with `tabby apply`,
#      and each node's `tabby agent` registers the node and claims its block (test/demo/multinode-etcd.ts).
# Cleans up after itself (agents, etcd and its data, namespaces). As root. Exits non-zero if a check of
# either demo fails.
set -euo pipefail
cd "$(dirname "$0")"
test/setup.sh
npm run build >/dev/null
[ -x /usr/bin/etcd ] || { echo "demo.sh: /usr/bin/etcd is missing (apt package etcd-server)" >&2; exit 1; }
work="$(mktemp -d /tmp/tabby-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
for demo in multinode multinode-etcd; do
  npx esbuild "test/demo/$demo.ts" --bundle --platform=node --target=node20 --log-level=warning --outfile="$work/$demo.js"
done
status=0
echo "=== 1/2: the cluster in a file ==="
node "$work/multinode.js" dist/tabby || status=1
echo
echo "=== 2/2: the cluster in etcd ==="
node "$work/multinode-etcd.js" dist/tabby || status=1
echo
if [ "$status" -eq 0 ]; then echo "demo.sh: both demos OK"; else echo "demo.sh: FAILED" >&2; fi
exit "$status"

#!/usr/bin/env bash
# tabby's main job, for real: builds dist/tabby, then simulates three nodes on two subnets (network
# namespaces behind a bridge and a router), runs tabby on each with one VXLAN CrossSubnet, natOutgoing
# pool from a Calico cluster file, starts a pod per node and prints which pod pairs reach each other,
# which paths were encapsulated, and how an external host sees them. Cleans up after itself. As root.
set -euo pipefail
cd "$(dirname "$0")"
test/setup.sh
npm run build >/dev/null
work="$(mktemp -d /tmp/tabby-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
npx esbuild test/demo/multinode.ts --bundle --platform=node --target=node20 --log-level=warning --outfile="$work/demo.js"
node "$work/demo.js" dist/tabby

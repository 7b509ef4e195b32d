#!/usr/bin/env bash
# tabby's main job, for real: builds dist/tabby, makes a node (a network namespace), has tabby wire two
# pods into it, shows they reach each other and the node, then removes them. Run as root from a clone.
set -euo pipefail
cd "$(dirname "$0")"
test/setup.sh
npm run build >/dev/null
BIN="$PWD/dist/tabby"

tag="tabbydemo$$"
node_ns="$tag-node"
work="$(mktemp -d /tmp/tabby-demo.XXXXXX)"
pods=(pod-a pod-b)
cleanup() {
  for p in "${pods[@]}"; do ip netns del "$tag-$p" 2>/dev/null || true; done
  ip netns del "$node_ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/net.json" <<JSON
{"cniVersion":"1.1.0","name":"tabbynet","type":"tabby","mtu":1450,"logFile":"$work/tabby.log","logLevel":"info",
 "ipam":{"type":"tabby-ipam","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$work/ipam"}}
JSON

cni() { # cni COMMAND POD : run tabby inside the node namespace, as a runtime would
  ip netns exec "$node_ns" env CNI_COMMAND="$1" CNI_CONTAINERID="$tag-$2" CNI_NETNS="/var/run/netns/$tag-$2" \
    CNI_IFNAME=eth0 CNI_PATH="$PWD/dist" "$BIN" < "$work/net.json"
}

echo "== node $node_ns: tabby $("$BIN" version | head -1 | cut -d' ' -f2)"
ip netns add "$node_ns"
ip -n "$node_ns" link set lo up
ip -n "$node_ns" addr add 192.168.77.1/32 dev lo   # the node's own address, for pod -> node traffic
declare -A addr
for p in "${pods[@]}"; do
  ip netns add "$tag-$p"
  out=$(cni ADD "$p")
  addr[$p]=$(printf '%s' "$out" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).ips[0].address.split("/")[0]))')
  echo "ADD $p -> ${addr[$p]}  ($(printf '%s' "$out" | head -c 160)...)"
done

ok=0
check() { # check DESCRIPTION NETNS TARGET
  if ip netns exec "$2" ping -c 2 -i 0.2 -W 1 "$3" >/dev/null 2>&1; then printf '  %-28s reachable\n' "$1"; else printf '  %-28s UNREACHABLE\n' "$1"; ok=1; fi
}
echo "== connectivity"
check "pod-a -> pod-b" "$tag-pod-a" "${addr[pod-b]}"
check "pod-b -> pod-a" "$tag-pod-b" "${addr[pod-a]}"
check "node -> pod-a" "$node_ns" "${addr[pod-a]}"
check "node -> pod-b" "$node_ns" "${addr[pod-b]}"
check "pod-a -> node" "$tag-pod-a" 192.168.77.1

echo "== DEL"
for p in "${pods[@]}"; do cni DEL "$p" && echo "DEL $p ok"; done
left=$(ls "$work/ipam/tabbynet" | grep -vc -e '^last_reserved_ip' -e '^tabby.lock' || true)
veths=$(ip -n "$node_ns" -o link show type veth | wc -l)
echo "reservations left: $left, host veths left: $veths"
[ "$left" = 0 ] && [ "$veths" = 0 ] || ok=1
[ "$ok" = 0 ] && echo "demo: OK" || echo "demo: FAILED"
exit "$ok"

# The guest can do what the multi-node suite needs: its kernel's modules are on the mounted root,
# network namespaces, ipip (tunl0), vxlan, veth and nftables work, and the built tabby runs.

kver=$(uname -r)
check "kernel $kver has its modules in /lib/modules" test -r "/lib/modules/$kver/modules.dep"

ns=smoke-$$
check "ip netns add works (/run/netns on tmpfs)" ip netns add "$ns"
check "a command runs inside the namespace" ip netns exec "$ns" ip link set lo up

check "modprobe ipip" modprobe ipip
check "tunl0 exists in the root namespace" ip link show tunl0
check "tunl0 exists in a new namespace" ip -n "$ns" link show tunl0
check "an ipip device can be added" ip -n "$ns" link add ipip-t type ipip local 192.0.2.1 remote 192.0.2.2

check "modprobe vxlan" modprobe vxlan
check "a vxlan device can be added" ip -n "$ns" link add vxlan.t type vxlan id 4096 dstport 4789 nolearning

check "a veth pair can be added" ip -n "$ns" link add vt0 type veth peer name vt1

cat >"$SCRATCH/smoke.nft" <<'NFT'
table ip tabby-smoke {
  set pools { type ipv4_addr; flags interval; elements = { 10.244.0.0/16 } }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @pools ip daddr != @pools counter masquerade fully-random
  }
}
NFT
check "nft -f loads a NAT table with a set and a masquerade rule" ip netns exec "$ns" nft -f "$SCRATCH/smoke.nft"
check "nft lists it back" ip netns exec "$ns" nft list table ip tabby-smoke

if [ -x "$TABBY_BIN" ]; then
  check "$TABBY_BIN version runs" "$TABBY_BIN" version
else
  result "$TABBY_BIN version runs" false "$TABBY_BIN is missing or not executable: build it first (npm run build)"
fi

ip netns del "$ns"

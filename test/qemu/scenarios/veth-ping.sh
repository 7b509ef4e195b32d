# The harness end to end: two namespaces joined by a veth pair ping each other.

a=ping-a-$$ b=ping-b-$$
ip netns add "$a" && ip netns add "$b"
ip -n "$a" link add eth0 type veth peer name eth0 netns "$b"
ip -n "$a" addr add 10.99.0.1/24 dev eth0
ip -n "$b" addr add 10.99.0.2/24 dev eth0
ip -n "$a" link set eth0 up
ip -n "$b" link set eth0 up

check "a pings b over the veth" ip netns exec "$a" ping -n -c 2 -i 0.2 -w 10 10.99.0.2
rx=$(ip -n "$b" -s -j link show eth0 | sed -n 's/.*"rx":{"bytes":[0-9]*,"packets":\([0-9]*\).*/\1/p')
result "b's eth0 counted the packets" "$([ "${rx:-0}" -ge 2 ] && echo true || echo false)" "rx packets: ${rx:-?}"

ip netns del "$a"
ip netns del "$b"

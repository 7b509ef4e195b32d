# IPIP on a kernel that has it (issue "IPIP proven on a stock distro kernel"), on three simulated nodes
# (two on one subnet, one behind a router) with one IPIP pool, natOutgoing on, and a disabled pool:
# - Always: every pod pair reachable (ping with DF at the pod MTU, TCP), each path through tunl0, and
#   protocol-4 packets on the underlay between every node pair;
# - CrossSubnet: node-a <-> node-b direct (no tunl0, no protocol 4), every pair with node-c through tunl0;
# - natOutgoing: the external host sees the node's address; the disabled pool's address sees the pod's;
# - a node removed from the cluster file loses its route after `tabby reconcile`.
load_modules ipip tunnel4 ip_tunnel veth bridge nf_tables nft_chain_nat nft_masq nft_fib_ipv4
multinode pool:ipip:Always pool:ipip:CrossSubnet removal:ipip

# Switching a pool VXLAN -> IPIP -> VXLAN with `tabby reconcile` on every node, while a pod on node-a
# pings a pod on node-c every 20 ms: pods made before the switch keep working, nothing of the old mode
# is left (no vxlan.tabby and so no FDB entries after the switch to IPIP; no tunl0 route, address or
# up state after the switch back), and the "disruption" checks give how long the pings went unanswered.
load_modules ipip vxlan veth bridge nf_tables nft_chain_nat nft_masq nft_fib_ipv4
multinode switch

# The control run: a VXLAN Always pool in the same guest, on the same simulated cluster code as the IPIP
# scenarios (and as test/integration/multinode.test.ts on the build machine). When IPIP fails here and
# this passes, the fault is IPIP's, not the harness's or the guest's.
load_modules vxlan veth bridge nf_tables nft_chain_nat nft_masq nft_fib_ipv4
TABBY_NAT_CHECK=first multinode pool:vxlan:Always

/** Names and numbers of the overlay devices tabby owns (Calico's, with tabby's name). */
export const VXLAN_DEVICE = 'vxlan.tabby';
/** The IPv6 VXLAN device (Calico's vxlan-v6.calico): its local address is the node's IPv6 underlay address. */
export const VXLAN_V6_DEVICE = 'vxlan-v6.tabby';
export const IPIP_DEVICE = 'tunl0';
export const VXLAN_VNI = 4096;
export const VXLAN_PORT = 4789;
export const VXLAN_OVERHEAD = 50;
/** IPv6 header 40 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_V6_OVERHEAD = 70;
export const IPIP_OVERHEAD = 20;
/** The routing protocol number marking tabby's routes (not taken in iproute2's rt_protos). */
export const ROUTE_PROTO = '117';

/** The address family a tunnel device carries (its NAT rules go in that family's table). */
export const tunnelFamily = (device: string): 4 | 6 => (device === VXLAN_V6_DEVICE ? 6 : 4);

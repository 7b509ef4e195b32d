/** Names and numbers of the overlay devices tabby owns (Calico's, with tabby's name). */
export const VXLAN_DEVICE = 'vxlan.tabby';
export const IPIP_DEVICE = 'tunl0';
export const VXLAN_VNI = 4096;
export const VXLAN_PORT = 4789;
export const VXLAN_OVERHEAD = 50;
export const IPIP_OVERHEAD = 20;
/** The routing protocol number marking tabby's routes (not taken in iproute2's rt_protos). */
export const ROUTE_PROTO = '117';

export const TABBY_VERSION = '0.1.0';
export const ABOUT = `tabby ${TABBY_VERSION}: CNI plugin with Calico-style pod wiring and host-local compatible IPAM, VXLAN/IPIP pools`;

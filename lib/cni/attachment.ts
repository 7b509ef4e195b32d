/** One CNI attachment: a container's interface, the unit that holds an address. */
export interface Attachment {
  containerId: string;
  ifname: string;
}

/** Who holds an address: one CNI attachment. */
export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface Reservation extends Attachment {
  ip: string;
  /** When the reservation was made (ms since the epoch), where the store knows it. */
  since?: number;
}

/**
 * Where one network's reservations live. The disk store (host-local's format) is the first;
 * everything above this interface is storage-agnostic. All methods but `withLock` expect the lock held.
 */
export interface IpamStore {
  withLock<T>(fn: () => T | Promise<T>): Promise<T>;
  /** Takes `ip` for `who`; false if it is already taken. */
  reserve(ip: string, who: Attachment, rangeSetIndex: number): boolean;
  lastReserved(rangeSetIndex: number): string | undefined;
  /** Every reservation; `withAge` also fills in `since`. */
  list(withAge?: boolean): Reservation[];
  /** Releases every address `who` holds; returns them. */
  releaseAttachment(who: Attachment): string[];
  release(ip: string): boolean;
  /** Throws unless reservations can be written. */
  probeWritable(): void;
}

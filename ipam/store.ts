import type { Attachment } from '../lib/cni/attachment';

export interface Reservation extends Attachment {
  ip: string;
  /** When the reservation was made (ms since the epoch), where the store knows it. */
  since?: number;
}

/**
 * Where one network's reservations live. The disk store (host-local's format) is the first;
 * everything above this interface is storage-agnostic. Methods that change the store expect the lock held;
 * reads may run without it (they see each reservation whole or not at all, or, mid-write, with no owner).
 */
export interface IpamStore {
  withLock<T>(fn: () => T | Promise<T>): Promise<T>;
  /** Takes `ip` for `who`; false if it is already taken. */
  reserve(ip: string, who: Attachment, rangeSetIndex: number): boolean;
  lastReserved(rangeSetIndex: number): string | undefined;
  /** Every reservation; `withAge` also fills in `since`. */
  list(withAge?: boolean): Reservation[];
  /** The reserved addresses alone (cheaper than `list`: no reservation is read). */
  reservedIps(): string[];
  /** Who holds `ip`, read afresh; undefined when nobody does. */
  holder(ip: string): Attachment | undefined;
  release(ip: string): boolean;
  /** Throws unless reservations can be written. */
  probeWritable(): void;
}

// host-local's on-disk reservations, read and written the way the reference plugin does, so both
// can share /var/lib/cni/networks/<network>: one file per address named by the address, holding
// "<container id>\r\n<ifname>"; last_reserved_ip.<range index>; and a "lock" file that every
// writer flock()s for the whole read-modify-write. File operations are synchronous on purpose:
// a CNI process does one thing at a time, and each async file op would cost a thread hop.
import { formatIP, type IP, parseIP, tryParseIP } from "../../net/cidr.ts";

export const LINE_BREAK = "\r\n";

export interface Reservation {
  ip: IP;
  containerId: string;
  ifname: string;
}

export class ReservationStore {
  constructor(readonly dir: string) {}

  /**
   * Takes the directory's lock, creating the directory as needed; call the result to unlock.
   * Blocks the thread while another process holds it: a plugin process has nothing else to do.
   */
  lock(): () => void {
    Deno.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const f = Deno.openSync(`${this.dir}/lock`, { read: true, write: true, create: true });
    f.lockSync(true);
    return () => {
      try {
        f.unlockSync();
      } finally {
        f.close();
      }
    };
  }

  /** Every reservation in the directory (files that do not parse as an address are skipped). */
  list(): Reservation[] {
    const out: Reservation[] = [];
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(this.dir)];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return out;
      throw e;
    }
    for (const e of entries) {
      if (!e.isFile) continue;
      const ip = tryParseIP(e.name);
      if (!ip) continue;
      let text: string;
      try {
        text = Deno.readTextFileSync(`${this.dir}/${e.name}`);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw err;
      }
      const [containerId, ifname = ""] = text.trim().split(/\r?\n/);
      out.push({ ip, containerId: containerId.trim(), ifname: ifname.trim() });
    }
    return out;
  }

  /** Writes the reservation file; false when the address is already taken. */
  reserve(r: Reservation): boolean {
    try {
      Deno.writeTextFileSync(
        `${this.dir}/${formatIP(r.ip)}`,
        `${r.containerId}${LINE_BREAK}${r.ifname}`,
        { createNew: true, mode: 0o644 },
      );
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return false;
      throw e;
    }
  }

  release(ip: IP): void {
    try {
      Deno.removeSync(`${this.dir}/${formatIP(ip)}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  lastReserved(index: number): IP | undefined {
    try {
      return parseIP(Deno.readTextFileSync(`${this.dir}/last_reserved_ip.${index}`).trim());
    } catch {
      return undefined;
    }
  }

  /**
   * Overwrites in place and then cuts to length, instead of truncating to zero first: ext4 flushes
   * a file truncated to zero and rewritten when it is closed (auto_da_alloc), which costs
   * milliseconds on every ADD. The lock keeps readers out; a torn write only makes the next
   * search start at the beginning of the range.
   */
  setLastReserved(index: number, ip: IP): void {
    const bytes = new TextEncoder().encode(formatIP(ip));
    const f = Deno.openSync(`${this.dir}/last_reserved_ip.${index}`, { write: true, create: true });
    try {
      let done = 0;
      while (done < bytes.length) done += f.writeSync(bytes.subarray(done));
      f.truncateSync(bytes.length);
    } finally {
      f.close();
    }
  }
}

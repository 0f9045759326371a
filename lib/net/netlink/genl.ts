// Generic netlink (linux/genetlink.h): the 4-byte genlmsghdr after nlmsghdr, and the control
// family that turns a family name ("wireguard") into the message type to use. Message encoding is
// message.ts's; this adds only what generic netlink needs beyond rtnetlink.
import { ENOENT } from "./constants.ts";
import { type Attr, attr, decodeAttrs, encodeMessage } from "./message.ts";
import { NetlinkError, type NetlinkSocket } from "./socket.ts";

export const NETLINK_GENERIC = 16;
export const GENL_HDRLEN = 4;
/** The control family's fixed id (NLMSG_MIN_TYPE). */
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
const CTRL_VERSION = 2;

/** struct genlmsghdr: command, version, two reserved bytes. */
export function genlHeader(cmd: number, version: number): Uint8Array {
  return Uint8Array.of(cmd, version, 0, 0);
}

/** A u16 attribute in host (little-endian) order, as the generic families expect. */
export function u16Attr(type: number, v: number): Attr {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
    throw new Error(`u16 attribute ${v} out of range`);
  }
  return { type, value: Uint8Array.of(v & 0xff, v >> 8) };
}

export function getFamilyAttrs(name: string): Attr[] {
  return [attr.str(CTRL_ATTR_FAMILY_NAME, name)];
}

/** The whole CTRL_CMD_GETFAMILY request for `name` (for tests and logs). */
export function encodeGetFamily(name: string, flags: number, seq: number): Uint8Array {
  return encodeMessage(
    GENL_ID_CTRL,
    flags,
    seq,
    genlHeader(CTRL_CMD_GETFAMILY, CTRL_VERSION),
    getFamilyAttrs(name),
  );
}

/** The family id in a CTRL_CMD_NEWFAMILY reply body (genlmsghdr, then attributes). */
export function decodeFamilyId(body: Uint8Array): number {
  const id = decodeAttrs(body.subarray(GENL_HDRLEN)).get(CTRL_ATTR_FAMILY_ID);
  if (!id || id.length < 2) throw new Error("generic netlink family reply without an id");
  return id[0] | (id[1] << 8);
}

/**
 * The id of generic netlink family `name`, or null when the kernel has no such family (the
 * wireguard family is absent without the kernel module). `s` must be a NETLINK_GENERIC socket.
 */
export function resolveFamily(s: NetlinkSocket, name: string): number | null {
  try {
    const [m] = s.query(
      `resolve generic netlink family ${name}`,
      GENL_ID_CTRL,
      genlHeader(CTRL_CMD_GETFAMILY, CTRL_VERSION),
      getFamilyAttrs(name),
      false,
    );
    return m ? decodeFamilyId(m.body) : null;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === ENOENT) return null;
    throw e;
  }
}

// A VICI client over charon's unix socket: one command at a time per connection (the protocol has
// no request ids), events of a streamed command collected until its response. The commands the
// ipsec backend needs have typed helpers; `request` reaches any other.
import { writeAll } from "../../bytes.ts";
import type { ViciSection } from "./message.ts";
import {
  CMD_REQUEST,
  CMD_RESPONSE,
  CMD_UNKNOWN,
  decodePacket,
  encodePacket,
  EVENT,
  EVENT_CONFIRM,
  EVENT_REGISTER,
  EVENT_UNKNOWN,
  EVENT_UNREGISTER,
  FrameReader,
  type Packet,
} from "./packet.ts";

/** A command charon refused (`success = no`), or one it does not know. */
export class ViciCommandError extends Error {
  constructor(readonly command: string, readonly errmsg: string) {
    super(`vici ${command}: ${errmsg}`);
  }
}

/** Events one streamed command may deliver before it is cut off (list-sas of a large node). */
export const MAX_STREAMED_EVENTS = 100_000;

type Waiter = { resolve: (p: Packet) => void; reject: (e: Error) => void };

export class ViciClient {
  #conn: Deno.UnixConn;
  #frames = new FrameReader();
  #waiter: Waiter | null = null;
  #events: { name: string; list: ViciSection[] } | null = null;
  #lock: Promise<unknown> = Promise.resolve();
  #closed: Error | null = null;

  private constructor(conn: Deno.UnixConn, readonly timeoutMs: number) {
    this.#conn = conn;
    this.#readLoop();
  }

  static async connect(socketPath: string, timeoutMs = 30_000): Promise<ViciClient> {
    const conn = await Deno.connect({ transport: "unix", path: socketPath });
    return new ViciClient(conn, timeoutMs);
  }

  close(): void {
    this.#fail(new Error("vici connection closed"));
  }

  #fail(e: Error): void {
    if (this.#closed) return;
    this.#closed = e;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#waiter?.reject(e);
    this.#waiter = null;
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) throw new Error("charon closed the vici connection");
        for (const body of this.#frames.push(buf.subarray(0, n))) this.#deliver(decodePacket(body));
      }
    } catch (e) {
      this.#fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  #deliver(p: Packet): void {
    if (p.type === EVENT) {
      const ev = this.#events;
      if (ev && p.name === ev.name) {
        if (ev.list.length >= MAX_STREAMED_EVENTS) {
          throw new Error(`vici: more than ${MAX_STREAMED_EVENTS} ${ev.name} events`);
        }
        ev.list.push(p.message ?? {});
      }
      return; // events nobody waits for (a registration outliving its command) are dropped
    }
    const w = this.#waiter;
    this.#waiter = null;
    if (!w) throw new Error(`vici: unexpected packet type ${p.type} with no command pending`);
    w.resolve(p);
  }

  async #exchange(p: Packet, what: string): Promise<Packet> {
    if (this.#closed) throw this.#closed;
    const reply = new Promise<Packet>((resolve, reject) => this.#waiter = { resolve, reject });
    await writeAll(this.#conn, encodePacket(p));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // No way to cancel a command: the connection cannot be trusted to line up afterwards.
        const e = new Error(`vici ${what}: no answer in ${this.timeoutMs} ms`);
        this.#fail(e);
        reject(e);
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([reply, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** One command; the raw response (CMD_UNKNOWN becomes a ViciCommandError). */
  request(command: string, message: ViciSection = {}): Promise<ViciSection> {
    return this.#serialized(() => this.#command(command, message));
  }

  async #command(command: string, message: ViciSection): Promise<ViciSection> {
    const p = await this.#exchange({ type: CMD_REQUEST, name: command, message }, command);
    if (p.type === CMD_UNKNOWN) throw new ViciCommandError(command, "unknown command");
    if (p.type !== CMD_RESPONSE) throw new Error(`vici ${command}: answered with type ${p.type}`);
    return p.message ?? {};
  }

  /** A streamed command: its `event` messages, in order, and the final response. */
  streamed(
    command: string,
    event: string,
    message: ViciSection = {},
  ): Promise<{ events: ViciSection[]; response: ViciSection }> {
    return this.#serialized(async () => {
      await this.#register(EVENT_REGISTER, event);
      const list: ViciSection[] = [];
      this.#events = { name: event, list };
      try {
        const response = await this.#command(command, message);
        return { events: list, response };
      } finally {
        this.#events = null;
        if (!this.#closed) await this.#register(EVENT_UNREGISTER, event);
      }
    });
  }

  async #register(type: number, event: string): Promise<void> {
    const p = await this.#exchange({ type, name: event }, `register ${event}`);
    if (p.type === EVENT_UNKNOWN) throw new ViciCommandError(`register ${event}`, "unknown event");
    if (p.type !== EVENT_CONFIRM) throw new Error(`vici register ${event}: type ${p.type}`);
  }

  /** A command whose response carries success/errmsg; refusal throws. */
  async #checked(command: string, message: ViciSection): Promise<ViciSection> {
    return checkSuccess(command, await this.request(command, message));
  }

  version(): Promise<ViciSection> {
    return this.request("version");
  }

  /** A shared secret (type IKE for a PSK) for `owners` (peer identities), kept under `id`. */
  async loadShared(
    s: { id: string; data: string; owners: string[]; type?: string },
  ): Promise<void> {
    await this.#checked("load-shared", {
      id: s.id,
      type: s.type ?? "IKE",
      data: s.data,
      owners: s.owners,
    });
  }

  async unloadShared(id: string): Promise<void> {
    await this.#checked("unload-shared", { id });
  }

  /** The ids of the shared secrets loaded over VICI (those loaded with an id). */
  async getShared(): Promise<string[]> {
    const keys = (await this.request("get-shared")).keys;
    return Array.isArray(keys) ? keys : [];
  }

  /** The names of the connections loaded over VICI. */
  async getConns(): Promise<string[]> {
    const conns = (await this.request("get-conns")).conns;
    return Array.isArray(conns) ? conns : [];
  }

  /** Loads or replaces the connection `name` (swanctl.conf's connection section layout). */
  async loadConn(name: string, conn: ViciSection): Promise<void> {
    await this.#checked("load-conn", { [name]: conn });
  }

  async unloadConn(name: string): Promise<void> {
    await this.#checked("unload-conn", { name });
  }

  /** Initiates a CHILD_SA; `timeoutMs` -1 returns at once, as charon defines it. */
  async initiate(s: { child: string; ike?: string; timeoutMs?: number }): Promise<void> {
    const m: ViciSection = { child: s.child, timeout: String(s.timeoutMs ?? -1) };
    if (s.ike) m.ike = s.ike;
    const { response } = await this.streamed("initiate", "control-log", m);
    checkSuccess("initiate", response);
  }

  /**
   * Terminates IKE_SAs (with their CHILD_SAs) of configuration `ike`. `force`: delete them at
   * once, without waiting for the peer to answer the DELETE (a peer that is gone never does).
   */
  async terminate(
    s: { ike?: string; child?: string; timeoutMs?: number; force?: boolean },
  ): Promise<void> {
    const m: ViciSection = { timeout: String(s.timeoutMs ?? -1) };
    if (s.ike) m.ike = s.ike;
    if (s.child) m.child = s.child;
    if (s.force) m.force = "yes";
    const { response } = await this.streamed("terminate", "control-log", m);
    checkSuccess("terminate", response);
  }

  /** The active IKE_SAs, each event a section keyed by the IKE_SA's configuration name. */
  async listSas(filter: { ike?: string } = {}): Promise<ViciSection[]> {
    const m: ViciSection = { noblock: "yes" };
    if (filter.ike) m.ike = filter.ike;
    return (await this.streamed("list-sas", "list-sa", m)).events;
  }
}

/** The response, or a ViciCommandError carrying charon's errmsg when success is not yes. */
export function checkSuccess(command: string, response: ViciSection): ViciSection {
  if (response.success !== "yes") {
    const msg = typeof response.errmsg === "string" ? response.errmsg : "refused";
    throw new ViciCommandError(command, msg);
  }
  return response;
}

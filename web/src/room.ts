// One room as the page lives in it: recent history, then live messages over a socket; a lost
// connection comes back by itself, resuming after the newest id shown, and what was not yet
// acknowledged is sent again (unless the catch-up shows it was stored after all).
import { MessageReply_Kind as Kind, type MessageReply } from "./gen/chat_pb";
import { chat, Code, statusOf, type Metadata } from "./api";
import { ChatSocket, request, type CallEnd } from "./socket";
import { type OwnLine, type View } from "./view";

const HISTORY = 50;
const RETRY_MS = [250, 500, 1000, 2000, 4000];

interface Outgoing {
  text: string;
  key: string;
  line: OwnLine;
}

export interface Session {
  user: string;
  metadata: Metadata;
  /** Told when the server refuses the session itself: a token missing or wrong
   * (UNAUTHENTICATED), or one that is not this user's or does not allow the room
   * (PERMISSION_DENIED). */
  refused: (end: CallEnd) => void;
}

function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export class Room {
  private lastId = 0n;
  /** The history the ids belong to: sent back on resuming, so a replaced one is shown whole. */
  private epoch = "";
  private readonly unacked: Outgoing[] = [];
  private socket: ChatSocket | undefined;
  private retries = 0;
  private left = false;
  private live = false;

  constructor(
    readonly name: string,
    private readonly session: Session,
    private readonly view: View,
  ) {}

  /** Shows the newest messages, then goes live. */
  async enter(): Promise<void> {
    this.view.clear(this.name);
    this.view.status("connecting", "connecting…");
    await this.connect(HISTORY);
  }

  leave(): void {
    this.left = true;
    this.socket?.close();
  }

  post(text: string): void {
    const outgoing = { text, key: newKey(), line: this.view.pending(this.session.user, text) };
    this.unacked.push(outgoing);
    if (this.socket?.open) this.socket.send(request(text, outgoing.key));
  }

  /** Catches up from the newest id shown (or the last `limit` messages), then opens the call. */
  private async connect(limit = 0): Promise<void> {
    try {
      await this.catchUp(limit);
    } catch (error) {
      this.ended(statusOf(error));
      return;
    }
    if (this.left) return;
    const metadata = {
      ...this.session.metadata,
      "chat-user": this.session.user,
      "chat-room": this.name,
      "chat-after-id": this.lastId.toString(),
      ...(this.epoch ? { "chat-epoch": this.epoch } : {}),
    };
    const socket = new ChatSocket(metadata, {
      opened: () => {
        this.retries = 0;
        this.live = true;
        this.view.status("live", "live");
        void this.refreshOnline();
        for (const outgoing of this.unacked) socket.send(request(outgoing.text, outgoing.key));
      },
      reply: (reply) => this.received(reply),
      ended: (end) => {
        this.live = false;
        this.ended(end);
      },
    });
    this.socket = socket;
  }

  private async catchUp(limit: number): Promise<void> {
    const headers = { ...this.session.metadata, ...(this.epoch ? { "chat-epoch": this.epoch } : {}) };
    const replies = chat.getMessages(
      { room: this.name, afterId: this.lastId, limit },
      {
        headers,
        onHeader: (received) => {
          const epoch = received.get("chat-epoch") ?? "";
          if (epoch && this.epoch && epoch !== this.epoch) {
            this.view.notice("leave", "the server's history was replaced; showing it from the start");
            this.lastId = 0n;
          }
          this.epoch = epoch || this.epoch;
        },
      },
    );
    for await (const reply of replies) {
      const mine = reply.user === this.session.user && this.unacked[0]?.text === reply.message;
      if (mine) this.unacked.shift()!.line.sent(reply.id, reply.sentAt);
      else this.view.message(reply.id, reply.user, reply.message, reply.sentAt, reply.user === this.session.user);
      this.lastId = reply.id;
    }
    this.view.loaded();
    await this.refreshOnline();
  }

  private received(reply: MessageReply): void {
    switch (reply.kind) {
      case Kind.CHAT:
        if (reply.id <= this.lastId) return;
        this.lastId = reply.id;
        this.view.message(reply.id, reply.user, reply.message, reply.sentAt, reply.user === this.session.user);
        return;
      case Kind.ACK:
        this.lastId = reply.id > this.lastId ? reply.id : this.lastId;
        this.unacked.shift()?.line.sent(reply.id, reply.sentAt);
        return;
      case Kind.ERROR:
        this.unacked.shift()?.line.refused(reply.message);
        return;
      case Kind.JOIN:
      case Kind.LEAVE:
        this.view.notice(reply.kind === Kind.JOIN ? "join" : "leave", reply.message, reply.sentAt);
        void this.refreshOnline();
        return;
    }
  }

  private async refreshOnline(): Promise<void> {
    try {
      const stats = await chat.getStats({ room: this.name }, { headers: this.session.metadata });
      // The server may not have seen this page's socket yet; it is online once live.
      const online = new Set(this.live ? [...stats.online, this.session.user] : stats.online);
      this.view.online([...online].sort());
    } catch {
      // the next JOIN, LEAVE or reconnect tries again
    }
  }

  private ended(end: CallEnd): void {
    if (this.left) return;
    this.socket = undefined;
    if (end.code === Code.Unauthenticated || end.code === Code.PermissionDenied) {
      this.left = true;
      this.session.refused(end);
      return;
    }
    this.view.stale(true);
    if (end.code === Code.InvalidArgument) {
      this.view.status("down", `refused: ${end.message}`);
      return;
    }
    const wait = RETRY_MS[Math.min(this.retries++, RETRY_MS.length - 1)];
    this.view.status("down", "reconnecting…");
    setTimeout(() => {
      if (!this.left) void this.connect();
    }, wait);
  }
}

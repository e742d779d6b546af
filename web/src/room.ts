// One room as the page lives in it: the newest page of its history, then live messages and
// what happens to them (edits, deletes, reactions, the topic) over a socket; older pages and
// threads on request. A lost connection comes back by itself, resuming after the newest entry
// seen, and what was not yet acknowledged is sent again (unless the catch-up shows it was
// stored after all). Edits, deletes, reactions and topics go one call each (PostMessage).
import {
  MessageReply_Kind as Kind,
  MessageRequest_Action as Action,
  type MessageReply,
} from "./gen/chat_pb";
import { chat, Code, FEATURES, statusOf, type Metadata } from "./api";
import { ChatSocket, request, type CallEnd } from "./socket";
import { shownOf, type OwnLine, type View } from "./view";

const HISTORY = 50;
/** A thread's page: its root and the newest replies. */
const THREAD = 500;
const RETRY_MS = [250, 500, 1000, 2000, 4000];

interface Outgoing {
  text: string;
  key: string;
  replyTo: bigint;
  line: OwnLine;
}

export interface Session {
  user: string;
  metadata: Metadata;
  /** Told when the server refuses the session itself: a token missing or wrong
   * (UNAUTHENTICATED), or one that is not this user's or does not allow the room
   * (PERMISSION_DENIED). */
  refused: (end: CallEnd) => void;
  /** Whether the session's token names the user a moderator of the room (the server checks). */
  moderates: (room: string) => boolean;
}

/** What the page calls each refused action, for the line that says why. */
const ACTION_NAMES: Record<number, string> = {
  [Action.EDIT]: "edit",
  [Action.DELETE]: "delete",
  [Action.REACT]: "react",
  [Action.UNREACT]: "take back the reaction",
  [Action.TOPIC]: "set the topic",
};

function newKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export class Room {
  /** The newest entry of the room's log the page has seen (a message or an action on one). */
  private lastId = 0n;
  /** The history the ids belong to: sent back on resuming, so a replaced one is shown whole. */
  private epoch = "";
  private readonly unacked: Outgoing[] = [];
  private socket: ChatSocket | undefined;
  private retries = 0;
  private left = false;
  private live = false;
  /** Whether the newest page is shown: from then on, a reconnect catches up from `lastId`. */
  private shown = false;
  /** The oldest message shown, and whether the room has older ones. */
  private oldest = 0n;
  private more = false;
  private loadingOlder = false;
  /** Messages quoted by replies, asked for once each. */
  private readonly fetched = new Set<bigint>();

  constructor(
    readonly name: string,
    private readonly session: Session,
    private readonly view: View,
  ) {}

  /** The newest entry of the room's log the page has seen. */
  get newest(): bigint {
    return this.lastId;
  }

  /** Shows the newest messages, then goes live. */
  async enter(): Promise<void> {
    this.view.clear(this.name, this.session.user, this.session.moderates(this.name));
    this.view.status("connecting", "connecting…");
    await this.connect();
  }

  leave(): void {
    this.left = true;
    this.socket?.close();
  }

  /** Sends a message; `replyTo` names the one it answers. */
  post(text: string, replyTo = 0n): void {
    const line = this.view.pending(this.session.user, text, replyTo);
    const outgoing = { text, key: newKey(), replyTo, line };
    this.unacked.push(outgoing);
    if (this.socket?.open) this.socket.send(request(text, outgoing.key, replyTo));
  }

  edit(id: bigint, text: string): Promise<void> {
    return this.act(Action.EDIT, id, text);
  }

  remove(id: bigint): Promise<void> {
    return this.act(Action.DELETE, id, "");
  }

  react(id: bigint, emoji: string, on: boolean): Promise<void> {
    return this.act(on ? Action.REACT : Action.UNREACT, id, emoji);
  }

  setTopic(topic: string): Promise<void> {
    return this.act(Action.TOPIC, 0n, topic);
  }

  /** Shows the page of messages just older than the oldest shown. */
  async older(): Promise<void> {
    if (this.loadingOlder || !this.more || !this.oldest) return;
    this.loadingOlder = true;
    try {
      const page = await chat.getHistory(
        { room: this.name, beforeId: this.oldest, limit: HISTORY },
        { headers: this.headers() },
      );
      if (this.left || (this.epoch && page.epoch !== this.epoch)) return;
      this.view.older(page.messages.map(shownOf));
      this.oldest = page.messages[0]?.id ?? this.oldest;
      this.more = page.more;
      this.view.olderLeft(this.more);
    } catch {
      // the reader scrolls up again, or presses the button
    } finally {
      this.loadingOlder = false;
    }
  }

  /** Opens a thread: its root and the messages that answer it. */
  async thread(root: bigint): Promise<void> {
    try {
      const page = await chat.getHistory(
        { room: this.name, thread: root, limit: THREAD },
        { headers: this.headers() },
      );
      if (!this.left) this.view.thread(root, page.messages.map(shownOf));
    } catch (error) {
      this.view.notice("problem", `The thread could not be opened: ${statusOf(error).message}.`);
    }
  }

  /** Fetches a message a reply quotes, for its quote. */
  async fetch(id: bigint): Promise<void> {
    if (this.fetched.has(id)) return;
    this.fetched.add(id);
    try {
      // The thread's one message just older than id + 1 is its root, id itself.
      const page = await chat.getHistory(
        { room: this.name, thread: id, beforeId: id + 1n, limit: 1 },
        { headers: this.headers() },
      );
      const root = page.messages[0];
      if (root !== undefined && root.id === id && !this.left) this.view.known(shownOf(root));
    } catch {
      this.fetched.delete(id); // asked again when a quote of it is drawn again
    }
  }

  /** What every call of this room carries: the session's, and who asks (direct conversations
   * are read only by the people they name). */
  private headers(): Metadata {
    return { ...this.session.metadata, "chat-user": this.session.user, "chat-room": this.name };
  }

  /** One action as one call: shown at once when acknowledged (the live reply that follows
   * changes nothing then), or a line saying why it was refused. */
  private async act(action: Action, targetId: bigint, text: string): Promise<void> {
    const what = ACTION_NAMES[action] ?? "do that";
    try {
      const reply = await chat.postMessage(
        { message: text, action, targetId },
        { headers: this.headers() },
      );
      if (this.left) return;
      if (reply.kind === Kind.ERROR) {
        this.view.notice("problem", `Could not ${what}: ${reply.message}.`);
        return;
      }
      if (action === Action.EDIT) this.view.edited(targetId, text);
      else if (action === Action.DELETE) this.view.deleted(targetId);
      else if (action === Action.TOPIC) this.view.topic(text);
      else this.view.reacted(targetId, text, this.session.user, action === Action.UNREACT);
    } catch (error) {
      if (!this.left) this.view.notice("problem", `Could not ${what}: ${statusOf(error).message}.`);
    }
  }

  /** Catches up (or shows the newest page, the first time), then opens the call. */
  private async connect(): Promise<void> {
    try {
      if (this.shown) await this.catchUp();
      else await this.showNewest();
    } catch (error) {
      this.ended(statusOf(error));
      return;
    }
    if (this.left) return;
    const metadata = {
      ...this.headers(),
      ...FEATURES,
      "chat-after-id": this.lastId.toString(),
      ...(this.epoch ? { "chat-epoch": this.epoch } : {}),
    };
    const socket = new ChatSocket(metadata, {
      opened: () => {
        this.retries = 0;
        this.live = true;
        this.view.status("live", "live");
        void this.refreshOnline();
        for (const outgoing of this.unacked) {
          socket.send(request(outgoing.text, outgoing.key, outgoing.replyTo));
        }
      },
      reply: (reply) => this.received(reply),
      ended: (end) => {
        this.live = false;
        this.ended(end);
      },
    });
    this.socket = socket;
  }

  /** The newest page of messages as they are now, and where the log stands: the stream
   * resumes after its newest entry (an entry it shows again changes nothing). */
  private async showNewest(): Promise<void> {
    const headers = { ...this.headers(), ...FEATURES };
    let newestEntry = 0n;
    const newest = chat.getMessages(
      { room: this.name, limit: 1 },
      { headers, onHeader: (received) => (this.epoch = received.get("chat-epoch") ?? this.epoch) },
    );
    for await (const entry of newest) newestEntry = entry.id;
    const page = await this.newestPage(headers);
    if (this.left) return;
    for (const message of page.messages) this.view.message(shownOf(message), false);
    const newestMessage = page.messages.at(-1)?.id ?? 0n;
    this.lastId = newestEntry > newestMessage ? newestEntry : newestMessage;
    this.oldest = page.messages[0]?.id ?? 0n;
    this.more = page.more;
    this.epoch = page.epoch || this.epoch;
    this.shown = true;
    this.view.olderLeft(this.more);
    this.view.loaded();
    await this.refreshOnline();
  }

  /** The newest page of messages; from a server older than GetHistory, the newest messages
   * of its log (in their current text: it sends no edits to a call that asks for none). */
  private async newestPage(headers: Metadata): Promise<{ messages: MessageReply[]; more: boolean; epoch: string }> {
    try {
      return await chat.getHistory({ room: this.name, limit: HISTORY }, { headers });
    } catch (error) {
      if (statusOf(error).code !== Code.Unimplemented) throw error;
    }
    const messages: MessageReply[] = [];
    const { "chat-features": _, ...plain } = headers;
    for await (const reply of chat.getMessages({ room: this.name, limit: HISTORY }, { headers: plain })) {
      messages.push(reply);
    }
    return { messages, more: false, epoch: this.epoch };
  }

  private async catchUp(): Promise<void> {
    const headers = { ...this.headers(), ...FEATURES, ...(this.epoch ? { "chat-epoch": this.epoch } : {}) };
    const replies = chat.getMessages(
      { room: this.name, afterId: this.lastId },
      {
        headers,
        onHeader: (received) => {
          const epoch = received.get("chat-epoch") ?? "";
          if (epoch && this.epoch && epoch !== this.epoch) {
            this.view.clear(this.name, this.session.user, this.session.moderates(this.name));
            this.view.notice("leave", "the server's history was replaced; showing it from the start");
            this.lastId = 0n;
            this.oldest = 0n;
            this.more = false;
          }
          this.epoch = epoch || this.epoch;
        },
      },
    );
    for await (const reply of replies) {
      const first = this.unacked[0];
      const mine =
        reply.kind === Kind.CHAT && reply.user === this.session.user && first?.text === reply.message;
      if (mine) {
        this.unacked.shift()!.line.sent(reply.id, reply.sentAt);
        this.lastId = reply.id;
      } else this.received(reply);
    }
    this.view.loaded();
    await this.refreshOnline();
  }

  private received(reply: MessageReply): void {
    switch (reply.kind) {
      case Kind.CHAT:
        if (reply.id <= this.lastId) return;
        this.lastId = reply.id;
        this.oldest ||= reply.id;
        this.view.message(shownOf(reply), true);
        return;
      case Kind.EDIT:
      case Kind.DELETE:
      case Kind.REACTION:
      case Kind.TOPIC:
        if (reply.id <= this.lastId) return;
        this.lastId = reply.id;
        this.applied(reply);
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
      default:
        return; // a kind this page does not know yet
    }
  }

  /** An action on a message (or the room) that someone took. */
  private applied(reply: MessageReply): void {
    if (reply.kind === Kind.EDIT) this.view.edited(reply.targetId, reply.message);
    else if (reply.kind === Kind.DELETE) this.view.deleted(reply.targetId);
    else if (reply.kind === Kind.REACTION) {
      this.view.reacted(reply.targetId, reply.message, reply.user, reply.removed);
    } else this.view.topic(reply.message);
  }

  private async refreshOnline(): Promise<void> {
    try {
      const stats = await chat.getStats({ room: this.name }, { headers: this.headers() });
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

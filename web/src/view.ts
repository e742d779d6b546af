// What the page shows: the message log, an open thread, who is online, the rooms, and how the
// connection is. Text from the server only ever goes in as text, never as markup.
//
// The log is in the server's order: stored lines by id, each day under a divider, and our own
// lines still on their way after them all; a line the server stores takes its place by id. It
// stays on the newest line unless the reader has scrolled up, and then offers a button back;
// scrolled to its top, it asks for older lines, which go above without moving what is in sight.
//
// Each message the page knows is one `Shown` state; its lines (in the log, in a thread, and the
// quotes of its replies) are drawn from that state again whenever an edit, a delete or a
// reaction changes it.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { type MessageReply } from "./gen/chat_pb";

export type LineState = "pending" | "sent" | "error";

/** How an action travels (`/me waves`), as the terminal client sends and shows it. */
const ACTION_PREFIX = "/me ";
/** How far from the newest line the reader may be and still count as reading it. */
const FOLLOW_SLACK_PX = 16;
/** How close to the oldest line shown the reader may scroll before older ones are asked for. */
const OLDER_SLACK_PX = 120;
/** The reactions offered by a message's React button (any other may arrive and be shown). */
export const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
/** What a deleted message shows in place of its text. */
const DELETED = "message deleted";

/** Who put one emoji on a message: how many, and the names the server listed (at most 20). */
export interface Tally {
  count: number;
  users: Set<string>;
}

/** A message as it is now: its text after edits, whether it was taken back, its reactions. */
export interface Shown {
  /** 0 while it is on its way. */
  id: bigint;
  user: string;
  text: string;
  at: Timestamp | undefined;
  /** The message it answers (0: none). */
  replyTo: bigint;
  edited: boolean;
  deleted: boolean;
  reactions: Map<string, Tally>;
  /** How many messages answer it. */
  replies: number;
}

/** What a reader can do from the page, handed to the view when it is made. */
export interface Actions {
  reply: (message: Shown) => void;
  edit: (message: Shown) => void;
  remove: (message: Shown) => void;
  /** `on`: put the emoji on; otherwise take it off. */
  react: (message: Shown, emoji: string, on: boolean) => void;
  thread: (root: bigint) => void;
  /** A reply quotes a message the page has not seen: fetch it and tell `View.known`. */
  missing: (root: bigint) => void;
  /** The reader reached the oldest line shown. */
  older: () => void;
  /** The reader picked someone in Online: their direct conversation. */
  direct: (user: string) => void;
}

/** A room in the list, with its topic. */
export interface Listed {
  name: string;
  topic: string;
  /** Whether it has messages this reader has not seen. */
  unread: boolean;
}

/** A message of a history page or a live reply, as the page keeps it. */
export function shownOf(reply: MessageReply): Shown {
  return {
    id: reply.id,
    user: reply.user,
    text: reply.message,
    at: reply.sentAt,
    replyTo: reply.replyTo,
    edited: reply.editedAt !== undefined,
    deleted: reply.deleted,
    reactions: new Map(
      reply.reactions.map((reaction) => [reaction.emoji, { count: reaction.count, users: new Set(reaction.users) }]),
    ),
    replies: reply.replies,
  };
}

/** The other people of a direct conversation (`@ann,bob` for ann: bob), or undefined for a room. */
export function othersIn(room: string, me: string): string[] | undefined {
  if (!room.startsWith("@")) return undefined;
  const users = room.slice(1).split(",");
  const others = users.filter((user) => user !== me);
  return others.length ? others : users;
}

/** A room as a reader names it: `#general`, or `@bob` for ann's conversation with bob. */
export function roomLabel(room: string, me: string): string {
  const others = othersIn(room, me);
  return others === undefined ? `#${room}` : `@${others.join(", ")}`;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = "",
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

function button(className: string, text: string, key: string, click: () => void): HTMLButtonElement {
  const node = element("button", className, text);
  node.type = "button";
  node.dataset.key = key;
  node.addEventListener("click", click);
  return node;
}

function byId<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function clock(date: Date): string {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

/** The local day of a moment, as `2026-12-08`: what a divider groups by. */
function dayOf(date: Date): string {
  const two = (value: number): string => value.toString().padStart(2, "0");
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
}

function longDate(date: Date): string {
  return date.toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

/** The action of a `/me` message (`waves`), or undefined for an ordinary message. */
export function actionOf(text: string): string | undefined {
  return text.startsWith(ACTION_PREFIX) ? text.slice(ACTION_PREFIX.length) : undefined;
}

/** A message in one line of words: `ann: hello`, `* ann waves`, or that it was deleted. */
export function gistOf(message: Shown): string {
  if (message.deleted) return `${message.user}: ${DELETED}`;
  const action = actionOf(message.text);
  return action === undefined ? `${message.user}: ${message.text}` : `* ${message.user} ${action}`;
}

function stamp(node: HTMLElement, at: Timestamp | undefined): void {
  const time = node.querySelector("time")!;
  if (!at) {
    time.textContent = "";
    return;
  }
  const date = timestampDate(at);
  time.textContent = clock(date);
  time.dateTime = date.toISOString();
  node.dataset.day = dayOf(date);
}

/** One message line of our own, while it goes from pending to sent or refused. */
export class OwnLine {
  constructor(
    private readonly node: HTMLLIElement,
    readonly message: Shown,
    private readonly stored: (node: HTMLLIElement) => void,
  ) {}

  sent(id: bigint, at: Timestamp | undefined): void {
    this.message.id = id;
    this.message.at = at;
    this.node.dataset.state = "sent";
    this.stored(this.node);
  }

  refused(reason: string): void {
    this.node.dataset.state = "error";
    this.node.querySelector(".state")!.textContent = `not sent: ${reason}`;
  }
}

export class View {
  private readonly log = byId<HTMLOListElement>("messages");
  private readonly empty = byId("empty");
  private readonly newer = byId<HTMLButtonElement>("newer");
  private readonly olderButton = byId<HTMLButtonElement>("older");
  private readonly threadPane = byId("thread");
  private readonly threadLog = byId<HTMLOListElement>("thread-messages");
  /** Whether the log follows the newest line (the reader has not scrolled up). */
  private pinned = true;
  /** Where the log was last scrolled to, to tell the reader's scrolling up from the rest. */
  private top = 0;
  /** Who reads: their lines may be edited and deleted, their reactions taken off. */
  private me = "";
  /** Whether the reader's token says they moderate the room: anyone's lines may be deleted. */
  private moderator = false;
  /** Every message the page knows, by id: in the log, in a thread, or quoted by a reply. */
  private readonly messages = new Map<bigint, Shown>();
  /** The message each line is drawn from (our own on their way have no id yet). */
  private readonly drawn = new WeakMap<HTMLLIElement, Shown>();
  /** The root of the thread open beside the log (0: none). */
  private threadRoot = 0n;

  constructor(private readonly actions: Actions) {
    this.log.addEventListener("scroll", () => {
      // Only the reader scrolls up: the page scrolls down, and a log that shrinks (the Online
      // list grew) is further from its end without having moved.
      const top = this.log.scrollTop;
      if (this.log.scrollHeight - top - this.log.clientHeight <= FOLLOW_SLACK_PX) this.pinned = true;
      else if (top < this.top) this.pinned = false;
      this.top = top;
      if (this.pinned) this.newer.hidden = true;
      if (top <= OLDER_SLACK_PX && !this.olderButton.hidden && !this.pinned) this.actions.older();
    });
    // The log's own box changes too (the Online list or the message box grows, a phone turns).
    new ResizeObserver(() => this.follow()).observe(this.log);
    this.newer.addEventListener("click", () => this.toNewest());
    this.olderButton.addEventListener("click", () => this.actions.older());
    byId("thread-close").addEventListener("click", () => this.closeThread());
    byId("thread-reply").addEventListener("click", () => {
      const root = this.messages.get(this.threadRoot);
      if (root) this.actions.reply(root);
    });
    this.threadPane.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closeThread();
    });
  }

  clear(room: string, me: string, moderator = false): void {
    this.me = me;
    this.moderator = moderator;
    this.log.replaceChildren();
    this.messages.clear();
    this.closeThread();
    this.empty.hidden = true;
    this.newer.hidden = true;
    this.olderButton.hidden = true;
    this.pinned = true;
    this.top = 0;
    const label = roomLabel(room, me);
    byId("room-title").textContent = label;
    document.title = `${label} · grpc.chat`;
    this.topic("");
  }

  /** The history is shown: says so when the room has none. */
  loaded(): void {
    this.empty.hidden = this.log.querySelector(".line[data-state]") !== null;
  }

  /** A stored message (ours too, when it comes back in a history). `fresh`: it has just been
   * posted, so the message it answers has one reply more than the page was told. */
  message(message: Shown, fresh: boolean): void {
    if (this.log.querySelector(`li[data-id="${message.id}"]`)) return;
    this.remember(message, fresh);
    const node = this.draw(message);
    node.dataset.state = "sent";
    this.place(node);
    if (this.threadRoot && message.replyTo === this.threadRoot) this.threadLine(message);
  }

  /** Messages older than every one shown, oldest first: above them, the reader's place kept. */
  older(messages: readonly Shown[]): void {
    const fromEnd = this.log.scrollHeight - this.log.scrollTop;
    const lines = messages
      .filter((message) => !this.log.querySelector(`li[data-id="${message.id}"]`))
      .map((message) => {
        this.remember(message, false);
        const node = this.draw(message);
        node.dataset.state = "sent";
        return node;
      });
    this.log.prepend(...lines);
    this.divide();
    if (lines.length) this.empty.hidden = true;
    this.log.scrollTop = this.log.scrollHeight - fromEnd;
    this.top = this.log.scrollTop;
  }

  /** Whether the room has messages older than those shown (a button, and scrolling, asks). */
  olderLeft(more: boolean): void {
    this.olderButton.hidden = !more;
  }

  /** A message fetched because a reply quotes it. */
  known(message: Shown): void {
    if (!this.messages.has(message.id)) this.messages.set(message.id, message);
    this.redraw(message.id);
  }

  /** Our own newest message still there, to edit with ↑ in an empty message box. */
  lastOwn(): Shown | undefined {
    const lines = this.log.querySelectorAll<HTMLLIElement>("li.line[data-id]");
    for (let index = lines.length - 1; index >= 0; index--) {
      const message = this.drawn.get(lines[index]!);
      if (message && message.user === this.me && !message.deleted) return message;
    }
    return undefined;
  }

  edited(id: bigint, text: string): void {
    const message = this.messages.get(id);
    if (!message || message.deleted) return;
    message.text = text;
    message.edited = true;
    this.redraw(id);
  }

  deleted(id: bigint): void {
    const message = this.messages.get(id);
    if (!message) return;
    message.deleted = true;
    message.text = "";
    message.reactions.clear();
    this.redraw(id);
  }

  /** A reaction put on or taken off; told twice (our own, acknowledged and then live), it
   * counts once. */
  reacted(id: bigint, emoji: string, user: string, removed: boolean): void {
    const message = this.messages.get(id);
    if (!message || message.deleted) return;
    const tally = message.reactions.get(emoji) ?? { count: 0, users: new Set<string>() };
    const listedAll = tally.users.size >= tally.count;
    if (!removed) {
      if (tally.users.has(user)) return;
      tally.count += 1;
      tally.users.add(user);
    } else {
      if (!tally.users.delete(user) && listedAll) return;
      tally.count = Math.max(0, tally.count - 1);
    }
    if (tally.count) message.reactions.set(emoji, tally);
    else message.reactions.delete(emoji);
    this.redraw(id);
  }

  /** A message of ours on its way: it goes after every stored line, and the log follows it. */
  pending(user: string, text: string, replyTo: bigint): OwnLine {
    const message: Shown = {
      id: 0n,
      user,
      text,
      at: undefined,
      replyTo,
      edited: false,
      deleted: false,
      reactions: new Map(),
      replies: 0,
    };
    const node = this.draw(message);
    node.dataset.state = "pending";
    node.querySelector(".state")!.textContent = "sending…";
    this.empty.hidden = true;
    this.log.append(node);
    this.toNewest();
    return new OwnLine(node, message, (stored) => {
      this.remember(message, true);
      this.fill(stored, message);
      this.place(stored);
      if (this.threadRoot && replyTo === this.threadRoot) this.threadLine(message);
    });
  }

  /** A JOIN, a LEAVE, or a word from the page itself. */
  notice(kind: string, text: string, at?: Timestamp): void {
    const node = element("li", `line ${kind}`);
    node.append(element("time", ""), element("span", "text", text));
    stamp(node, at);
    this.place(node);
  }

  /** Opens a thread beside the log: its root and the messages that answer it, oldest first. */
  thread(root: bigint, messages: readonly Shown[]): void {
    this.threadRoot = root;
    for (const message of messages) this.remember(message, false);
    this.threadLog.replaceChildren();
    for (const message of messages) this.threadLine(this.messages.get(message.id) ?? message);
    this.threadPane.hidden = false;
    byId("thread-close").focus();
  }

  closeThread(): void {
    const open = !this.threadPane.hidden;
    this.threadRoot = 0n;
    this.threadPane.hidden = true;
    this.threadLog.replaceChildren();
    if (open) byId("message").focus();
  }

  /** The room's topic, over the log and beside the room in the list. */
  topic(text: string): void {
    byId("topic").textContent = text;
    const current = document.querySelector<HTMLElement>("#rooms [aria-current] ~ .topic");
    if (current) current.textContent = text;
  }

  online(users: readonly string[]): void {
    byId("online").replaceChildren(
      ...users.map((user) => {
        const item = element("li", "", user === this.me ? user : "");
        if (user !== this.me) {
          const open = button("person", user, user, () => this.actions.direct(user));
          open.title = `Direct conversation with ${user}`;
          item.append(open);
        }
        return item;
      }),
    );
    this.stale(false);
  }

  /** Greys who is online while the page cannot ask (the list may be out of date). */
  stale(stale: boolean): void {
    const list = byId("online");
    list.classList.toggle("stale", stale);
    if (stale) list.setAttribute("aria-description", "as last seen: reconnecting");
    else list.removeAttribute("aria-description");
  }

  /** The rooms, with their topics, and apart from them the direct conversations. */
  rooms(listed: readonly Listed[], current: string, enter: (room: string) => void): void {
    const item = (room: Listed): HTMLLIElement => {
      const node = element("li", "");
      const here = room.name === current;
      const open = button(here ? "room current" : "room", roomLabel(room.name, this.me), room.name, () =>
        enter(room.name),
      );
      if (here) open.setAttribute("aria-current", "true");
      if (room.unread) {
        open.classList.add("unread");
        open.setAttribute("aria-description", "new messages");
      }
      node.append(open);
      if (!room.name.startsWith("@")) node.append(element("span", "topic", room.topic));
      return node;
    };
    byId("rooms").replaceChildren(...listed.filter((room) => !room.name.startsWith("@")).map(item));
    const directs = listed.filter((room) => room.name.startsWith("@")).map(item);
    byId("directs").replaceChildren(...directs);
    byId("directs-title").hidden = directs.length === 0;
  }

  status(state: "connecting" | "live" | "down", text: string): void {
    const status = byId("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  /** Keeps what the page knows of a message; a fresh reply counts on its root. */
  private remember(message: Shown, fresh: boolean): void {
    const root = message.replyTo ? this.messages.get(message.replyTo) : undefined;
    if (fresh && root && !this.messages.has(message.id)) {
      root.replies += 1;
      this.messages.set(message.id, message);
      this.redraw(root.id);
      return;
    }
    this.messages.set(message.id, message);
  }

  private threadLine(message: Shown): void {
    const node = this.draw(message);
    node.dataset.state = "sent";
    this.threadLog.append(node);
    node.scrollIntoView({ block: "nearest" });
  }

  private draw(message: Shown): HTMLLIElement {
    const node = element("li", "line");
    this.fill(node, message);
    return node;
  }

  /** Draws again every line of a message, and every reply's quote of it. */
  private redraw(id: bigint): void {
    for (const node of document.querySelectorAll<HTMLLIElement>(`li[data-id="${id}"], li[data-reply-to="${id}"]`)) {
      const message = node.dataset.id === id.toString() ? this.messages.get(id) : this.drawn.get(node);
      if (message) this.fill(node, message);
    }
    this.follow(); // a line that grew (a first reaction) keeps the newest line in sight
  }

  /** A message line: `ann: hello` (or `* ann waves`), what it answers above it, its
   * reactions and replies below, and what the reader may do with it on hover or focus. */
  private fill(node: HTMLLIElement, message: Shown): void {
    const focused = node.contains(document.activeElement) ? (document.activeElement as HTMLElement) : null;
    const action = message.deleted ? undefined : actionOf(message.text);
    const mine = message.user === this.me;
    node.className = `line ${mine ? "mine" : "chat"}${action === undefined ? "" : " action"}`;
    node.classList.toggle("deleted", message.deleted);
    node.tabIndex = -1;
    this.drawn.set(node, message);
    if (message.id) node.dataset.id = message.id.toString();
    if (message.replyTo) node.dataset.replyTo = message.replyTo.toString();
    const body = element("div", "body");
    if (message.replyTo) body.append(this.quote(message.replyTo));
    const said = element("div", "said");
    if (action !== undefined) said.append(element("span", "text", `* ${message.user} ${action}`));
    else said.append(element("b", "user", message.user), element("span", "text", message.deleted ? DELETED : message.text));
    if (message.edited && !message.deleted) said.append(element("span", "edited", "(edited)"));
    said.append(element("span", "state"));
    body.append(said);
    const chips = [...message.reactions].filter(([, tally]) => tally.count > 0);
    if (chips.length) {
      const row = element("div", "reactions");
      for (const [emoji, tally] of chips) {
        const on = tally.users.has(this.me);
        const chip = button("chip", `${emoji} ${tally.count}`, `chip ${emoji}`, () =>
          this.actions.react(message, emoji, !on),
        );
        chip.setAttribute("aria-pressed", on ? "true" : "false");
        chip.setAttribute("aria-label", `${emoji} ${tally.count}`);
        chip.title = [...tally.users].join(", ");
        row.append(chip);
      }
      body.append(row);
    }
    if (message.replies && !message.replyTo) {
      const label = message.replies === 1 ? "1 reply" : `${message.replies} replies`;
      body.append(button("replies", label, "replies", () => this.actions.thread(message.id)));
    }
    node.replaceChildren(element("time", ""), body);
    if (message.id && !message.deleted) node.append(this.tools(node, message, mine));
    stamp(node, message.at);
    if (focused?.dataset.key) {
      const again = node.querySelector<HTMLElement>(`[data-key="${CSS.escape(focused.dataset.key)}"]`);
      (again ?? node).focus();
    }
  }

  /** The quoted line of the message a reply answers, which opens its thread. */
  private quote(root: bigint): HTMLButtonElement {
    const known = this.messages.get(root);
    if (known === undefined) this.actions.missing(root);
    const words = known === undefined ? "a message" : gistOf(known);
    const quote = button("quote", `↪ ${words}`, "quote", () => this.actions.thread(root));
    quote.setAttribute("aria-label", `In reply to ${words}: open the thread`);
    return quote;
  }

  private tools(node: HTMLLIElement, message: Shown, mine: boolean): HTMLElement {
    const tools = element("div", "tools");
    tools.setAttribute("role", "group");
    tools.setAttribute("aria-label", "Message actions");
    tools.append(
      button("tool", "Reply", "reply", () => this.actions.reply(message)),
      button("tool", "React", "react", () => this.picker(node, message)),
    );
    if (mine) tools.append(button("tool", "Edit", "edit", () => this.actions.edit(message)));
    if (mine || this.moderator) {
      tools.append(button("tool", "Delete", "delete", () => this.actions.remove(message)));
    }
    return tools;
  }

  /** The reactions to choose from, under a message; Escape closes it. */
  private picker(node: HTMLLIElement, message: Shown): void {
    const open = node.querySelector(".picker");
    if (open) {
      open.remove();
      return;
    }
    const picker = element("div", "picker");
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", "Reactions");
    for (const emoji of EMOJI) {
      const on = message.reactions.get(emoji)?.users.has(this.me) ?? false;
      const choice = button("emoji", emoji, `emoji ${emoji}`, () => {
        picker.remove();
        this.actions.react(message, emoji, !on);
      });
      choice.setAttribute("aria-pressed", on ? "true" : "false");
      picker.append(choice);
    }
    picker.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.stopPropagation();
      picker.remove();
      node.querySelector<HTMLElement>("[data-key=react]")?.focus();
    });
    node.querySelector(".body")!.append(picker);
    picker.querySelector("button")!.focus();
  }

  /** Puts a stored line (or a notice) in the server's order: by id, before our pending lines. */
  private place(node: HTMLLIElement): void {
    node.remove();
    let before = this.log.querySelector<HTMLElement>(".line[data-state=pending]");
    const id = node.dataset.id === undefined ? undefined : BigInt(node.dataset.id);
    if (id !== undefined) {
      let previous = (before ? before.previousElementSibling : this.log.lastElementChild) as HTMLElement | null;
      while (previous && (previous.classList.contains("day") || later(previous, id))) {
        before = previous;
        previous = previous.previousElementSibling as HTMLElement | null;
      }
    }
    this.log.insertBefore(node, before);
    this.divide();
    if (node.dataset.state) this.empty.hidden = true;
    if (this.pinned) this.follow();
    else this.newer.hidden = false;
  }

  /** One divider before the first line of each day, and no other. */
  private divide(): void {
    for (const divider of Array.from(this.log.querySelectorAll<HTMLElement>("li.day"))) {
      const next = divider.nextElementSibling as HTMLElement | null;
      if (next?.classList.contains("day") || next?.dataset.day !== divider.dataset.day) divider.remove();
    }
    let last = "";
    for (const node of Array.from(this.log.children) as HTMLElement[]) {
      const day = node.dataset.day;
      if (node.classList.contains("day") || day === undefined) continue;
      const divided = node.previousElementSibling?.classList.contains("day") ?? false;
      if (day !== last && !divided) node.before(this.divider(node));
      if (day === last && divided) node.previousElementSibling!.remove();
      last = day;
    }
  }

  private divider(line: HTMLElement): HTMLLIElement {
    const node = element("li", "day", longDate(new Date(line.querySelector("time")!.dateTime)));
    node.dataset.day = line.dataset.day;
    return node;
  }

  /** Keeps the newest line in sight while the reader has not scrolled up. */
  private follow(): void {
    if (!this.pinned) return;
    this.log.scrollTop = this.log.scrollHeight;
    this.top = this.log.scrollTop;
  }

  private toNewest(): void {
    this.pinned = true;
    this.newer.hidden = true;
    this.follow();
  }
}

/** Whether a line is one the server stored after message `id`. */
function later(node: HTMLElement, id: bigint): boolean {
  return node.dataset.id !== undefined && BigInt(node.dataset.id) > id;
}

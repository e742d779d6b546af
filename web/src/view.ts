// What the page shows: the message log, who is online, the rooms, and how the connection is.
// Text from the server only ever goes in as text, never as markup.
//
// The log is in the server's order: stored lines by id, each day under a divider, and our own
// lines still on their way after them all; a line the server stores takes its place by id. It
// stays on the newest line unless the reader has scrolled up, and then offers a button back.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

export type LineState = "pending" | "sent" | "error";

/** How an action travels (`/me waves`), as the terminal client sends and shows it. */
const ACTION_PREFIX = "/me ";
/** How far from the newest line the reader may be and still count as reading it. */
const FOLLOW_SLACK_PX = 16;

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
    private readonly stored: (node: HTMLLIElement) => void,
  ) {}

  sent(id: bigint, at: Timestamp | undefined): void {
    this.node.dataset.state = "sent";
    this.node.dataset.id = id.toString();
    stamp(this.node, at);
    this.node.querySelector(".state")!.textContent = "";
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
  /** Whether the log follows the newest line (the reader has not scrolled up). */
  private pinned = true;
  /** Where the log was last scrolled to, to tell the reader's scrolling up from the rest. */
  private top = 0;

  constructor() {
    this.log.addEventListener("scroll", () => {
      // Only the reader scrolls up: the page scrolls down, and a log that shrinks (the Online
      // list grew) is further from its end without having moved.
      const top = this.log.scrollTop;
      if (this.log.scrollHeight - top - this.log.clientHeight <= FOLLOW_SLACK_PX) this.pinned = true;
      else if (top < this.top) this.pinned = false;
      this.top = top;
      if (this.pinned) this.newer.hidden = true;
    });
    // The log's own box changes too (the Online list or the message box grows, a phone turns).
    new ResizeObserver(() => this.follow()).observe(this.log);
    this.newer.addEventListener("click", () => this.toNewest());
  }

  clear(room: string): void {
    this.log.replaceChildren();
    this.empty.hidden = true;
    this.newer.hidden = true;
    this.pinned = true;
    this.top = 0;
    byId("room-title").textContent = `#${room}`;
    document.title = `#${room} · grpc.chat`;
  }

  /** The history is shown: says so when the room has none. */
  loaded(): void {
    this.empty.hidden = this.log.querySelector(".line[data-state]") !== null;
  }

  /** Someone's stored message (ours too, when it comes back in a history). */
  message(id: bigint, user: string, text: string, at: Timestamp | undefined, mine: boolean): void {
    const node = this.line(mine ? "mine" : "chat", user, text);
    node.dataset.id = id.toString();
    node.dataset.state = "sent";
    stamp(node, at);
    this.place(node);
  }

  /** A message of ours on its way: it goes after every stored line, and the log follows it. */
  pending(user: string, text: string): OwnLine {
    const node = this.line("mine", user, text);
    node.dataset.state = "pending";
    node.querySelector(".state")!.textContent = "sending…";
    this.empty.hidden = true;
    this.log.append(node);
    this.toNewest();
    return new OwnLine(node, (stored) => this.place(stored));
  }

  /** A JOIN, a LEAVE, or a word from the page itself. */
  notice(kind: string, text: string, at?: Timestamp): void {
    const node = element("li", `line ${kind}`);
    node.append(element("time", ""), element("span", "text", text));
    stamp(node, at);
    this.place(node);
  }

  online(users: readonly string[]): void {
    byId("online").replaceChildren(...users.map((user) => element("li", "", user)));
    this.stale(false);
  }

  /** Greys who is online while the page cannot ask (the list may be out of date). */
  stale(stale: boolean): void {
    const list = byId("online");
    list.classList.toggle("stale", stale);
    if (stale) list.setAttribute("aria-description", "as last seen: reconnecting");
    else list.removeAttribute("aria-description");
  }

  rooms(names: readonly string[], current: string, enter: (room: string) => void): void {
    byId("rooms").replaceChildren(
      ...names.map((name) => {
        const item = element("li", "");
        const button = element("button", name === current ? "room current" : "room", `#${name}`);
        button.type = "button";
        if (name === current) button.setAttribute("aria-current", "true");
        button.onclick = () => enter(name);
        item.append(button);
        return item;
      }),
    );
  }

  status(state: "connecting" | "live" | "down", text: string): void {
    const status = byId("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  /** A message line: `ann: hello`, or `* ann waves` for an action. */
  private line(kind: string, user: string, text: string): HTMLLIElement {
    const action = actionOf(text);
    const node = element("li", `line ${kind}${action === undefined ? "" : " action"}`);
    node.append(element("time", ""));
    if (action === undefined) node.append(element("b", "user", user), element("span", "text", text));
    else node.append(element("span", "text", `* ${user} ${action}`));
    node.append(element("span", "state"));
    return node;
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

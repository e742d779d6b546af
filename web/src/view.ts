// What the page shows: the message log, who is online, the rooms, and how the connection is.
// Text from the server only ever goes in as text, never as markup.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

export type LineState = "pending" | "sent" | "error";

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

/** One message line of our own, while it goes from pending to sent or refused. */
export class OwnLine {
  constructor(private readonly node: HTMLLIElement) {}

  sent(id: bigint, at: Timestamp | undefined): void {
    this.node.dataset.state = "sent";
    this.node.dataset.id = id.toString();
    this.node.querySelector("time")!.textContent = at ? clock(timestampDate(at)) : "";
    this.node.querySelector(".state")!.textContent = "";
  }

  refused(reason: string): void {
    this.node.dataset.state = "error";
    this.node.querySelector(".state")!.textContent = `not sent: ${reason}`;
  }
}

export class View {
  private readonly log = byId<HTMLOListElement>("messages");

  clear(room: string): void {
    this.log.replaceChildren();
    byId("room-title").textContent = `#${room}`;
    document.title = `#${room} · grpc.chat`;
  }

  /** Someone's stored message (ours too, when it comes back in a history). */
  message(id: bigint, user: string, text: string, at: Timestamp | undefined, mine: boolean): void {
    const node = this.line(mine ? "mine" : "chat", user, text, at);
    node.dataset.id = id.toString();
    node.dataset.state = "sent";
    this.append(node);
  }

  /** A message of ours on its way. */
  pending(user: string, text: string): OwnLine {
    const node = this.line("mine", user, text, undefined);
    node.dataset.state = "pending";
    node.querySelector(".state")!.textContent = "sending…";
    this.append(node);
    return new OwnLine(node);
  }

  /** A JOIN, a LEAVE, or a word from the page itself. */
  notice(kind: string, text: string, at?: Timestamp): void {
    const node = element("li", `line ${kind}`);
    node.append(element("time", "", at ? clock(timestampDate(at)) : ""), element("span", "text", text));
    this.append(node);
  }

  online(users: readonly string[]): void {
    byId("online").replaceChildren(...users.map((user) => element("li", "", user)));
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

  private line(kind: string, user: string, text: string, at: Timestamp | undefined): HTMLLIElement {
    const node = element("li", `line ${kind}`);
    node.append(
      element("time", "", at ? clock(timestampDate(at)) : ""),
      element("b", "user", user),
      element("span", "text", text),
      element("span", "state"),
    );
    return node;
  }

  private append(node: HTMLLIElement): void {
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    this.log.append(node);
    if (atBottom) node.scrollIntoView({ block: "end" });
  }
}

// The chat page: a name (and a token, when the server asks for one), then a room.
// `?user=NAME&room=ROOM` skips the form; the URL keeps both, so a reload comes straight back,
// and each room entered is a step in the browser's history (Back returns to the room before).
// The message box sends, answers a message (Reply), or changes one of ours (Edit, or ↑ in an
// empty box for the newest); `/topic TEXT` sets the room's topic.
import { auth, chat, Code, statusOf } from "./api";
import { Room } from "./room";
import { type CallEnd } from "./socket";
import { gistOf, View, type Listed, type Shown } from "./view";

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** A direct conversation: `@` and two to eight names, sorted (the server checks the order). */
const DIRECT = /^@[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){1,7}$/;
const TOKEN_KEY = "grpc.chat.token";
const TOPIC_COMMAND = "/topic ";
/** How often the list of rooms is asked for again (a direct conversation may have begun). */
const ROOMS_EVERY_MS = 5_000;
const MESSAGE_LINES = 5;
const login = document.getElementById("login") as HTMLFormElement;
const chatPane = document.getElementById("chat") as HTMLElement;
const compose = document.getElementById("compose") as HTMLFormElement;
const messageBox = document.getElementById("message") as HTMLTextAreaElement;
const otherRoom = document.getElementById("other-room") as HTMLFormElement;
const field = (form: HTMLFormElement, name: string): HTMLInputElement =>
  form.elements.namedItem(name) as HTMLInputElement;

const context = document.getElementById("context") as HTMLElement;

let user = "";
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let room: Room | undefined;
/** The newest entry of each room listed, as last seen by this user: a room whose newest is
 * past it (or a direct conversation that was not there before) has something new. */
const seen = new Map<string, bigint>();
let listedBefore = false;

/** What the message box does with its text: send it, answer a message, or edit one. */
let mode: { kind: "say" } | { kind: "reply"; to: Shown } | { kind: "edit"; message: Shown } = {
  kind: "say",
};

const view = new View({
  reply: (message) => setMode({ kind: "reply", to: message }),
  edit: (message) => setMode({ kind: "edit", message }),
  remove: (message) => void room?.remove(message.id),
  react: (message, emoji, on) => void room?.react(message.id, emoji, on),
  thread: (root) => void room?.thread(root),
  missing: (root) => void room?.fetch(root),
  older: () => void room?.older(),
  direct: (other) => void switchTo(directWith(other)),
});

/** The direct conversation of this user and `other`. */
function directWith(other: string): string {
  return `@${[...new Set([user, other])].sort().join(",")}`;
}

function validRoom(name: string): boolean {
  return NAME.test(name) || DIRECT.test(name);
}

/** Sets what the message box does, says so above it, and puts the cursor there. */
function setMode(next: typeof mode): void {
  mode = next;
  const words =
    next.kind === "reply"
      ? `Replying to ${gistOf(next.to)}`
      : next.kind === "edit"
        ? "Editing your message"
        : "";
  document.getElementById("context-text")!.textContent = words;
  context.hidden = next.kind === "say";
  if (next.kind === "edit") messageBox.value = next.message.text;
  fitMessageBox();
  messageBox.focus();
}

/** What a name must be, said for the field it is typed in. */
function nameRule(what: "name" | "room"): string {
  return `A ${what} is 1-64 characters of A-Z a-z 0-9 _ . - (no spaces).`;
}

/** Whether the token's `mod` claim names a room pattern (`*` matching any run) that `name`
 * matches: the page then offers Delete on everyone's messages. The server decides. */
function moderates(name: string): boolean {
  let patterns: unknown;
  try {
    const payload = token.split(".")[1] ?? "";
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    patterns = (JSON.parse(json) as Record<string, unknown>).mod;
  } catch {
    return false; // not a signed token: nobody moderates
  }
  if (!Array.isArray(patterns)) return false;
  return patterns.some((pattern) => {
    if (typeof pattern !== "string") return false;
    const escaped = pattern.split("*").map((part) => part.replace(/[.\\^$+?()[\]{}|-]/g, "\\$&"));
    return new RegExp(`^${escaped.join(".*")}$`).test(name);
  });
}

/** Why the server refused a session, in words for someone at the page. */
function refusal(end: CallEnd): string {
  if (end.code === Code.Unauthenticated) {
    // where a token comes from is said below the field
    return token
      ? `The server did not accept this token: ${end.message}.`
      : "This server needs a token: ask its operator for one.";
  }
  return token ? `Your token does not allow this: ${end.message}.` : `You may not enter: ${end.message}.`;
}

function showLogin(name: string, roomName: string, problem: string): void {
  room?.leave();
  room = undefined;
  chatPane.hidden = true;
  login.hidden = false;
  field(login, "user").value = name;
  field(login, "room").value = roomName;
  field(login, "token").value = token;
  document.getElementById("login-problem")!.textContent = problem;
  const first = problem && name ? field(login, "token") : field(login, "user");
  first.focus();
}

/** Goes into a room; `step` says whether the browser's history gains a step for it. */
function enter(name: string, roomName: string, step: "push" | "replace"): void {
  user = name;
  if (room) {
    const before = seen.get(room.name) ?? 0n;
    seen.set(room.name, room.newest > before ? room.newest : before);
  }
  room?.leave();
  login.hidden = true;
  chatPane.hidden = false;
  roomProblem("");
  if (mode.kind !== "say") setMode({ kind: "say" });
  const refused = (end: CallEnd): void => showLogin(user, roomName, refusal(end));
  room = new Room(roomName, { user, metadata: auth(token), refused, moderates }, view);
  const url = `?${new URLSearchParams({ user, room: roomName }).toString()}`;
  if (step === "push") history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  void room.enter();
  void listRooms(roomName);
  messageBox.focus();
}

setInterval(() => {
  if (room && !document.hidden) void listRooms(room.name);
}, ROOMS_EVERY_MS);

/** Enters another room once the server lets this session see it; refuses it in place if not. */
async function switchTo(name: string): Promise<void> {
  if (name === room?.name) return;
  try {
    await chat.getStats({ room: name }, { headers: { ...auth(token), "chat-user": user } });
  } catch (error) {
    const status = statusOf(error);
    if (status.code === Code.PermissionDenied) {
      roomProblem(`You may not enter ${name.startsWith("@") ? name : `#${name}`}: ${status.message}.`);
      return;
    }
    // the server is away: the room reconnects by itself
  }
  field(otherRoom, "room").value = "";
  enter(user, name, "push");
}

function roomProblem(problem: string): void {
  document.getElementById("room-problem")!.textContent = problem;
  field(otherRoom, "room").setAttribute("aria-invalid", problem ? "true" : "false");
}

/** The rooms this user may see, with their topics (the one shown and "general" among them),
 * marked when they have something new. */
async function listRooms(current: string): Promise<void> {
  const topics = new Map<string, string>([[current, ""], ["general", ""]]);
  const lastIds = new Map<string, bigint>();
  try {
    const listed = await chat.listRooms({}, { headers: { ...auth(token), "chat-user": user } });
    for (const shown of listed.rooms) {
      topics.set(shown.name, shown.topic);
      lastIds.set(shown.name, shown.lastId);
    }
  } catch {
    // the room shown and "general" are still there
  }
  if (current !== room?.name) return;
  const unread = (name: string): boolean => {
    const last = lastIds.get(name) ?? 0n;
    const before = seen.get(name);
    if (name === current || (before === undefined && !listedBefore)) seen.set(name, last);
    const known = seen.get(name);
    return known === undefined ? last > 0n : last > known;
  };
  const rooms: Listed[] = [...topics].sort().map(([name, topic]) => ({ name, topic, unread: unread(name) }));
  listedBefore = true;
  view.rooms(rooms, current, (name) => void switchTo(name));
  view.topic(topics.get(current) ?? "");
}

/** Fits the message box to what is typed: one line, up to a few, then it scrolls. */
function fitMessageBox(): void {
  messageBox.style.height = "auto";
  const style = getComputedStyle(messageBox);
  const line = parseFloat(style.lineHeight);
  const frame = messageBox.offsetHeight - messageBox.clientHeight;
  const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
  const most = line * MESSAGE_LINES + padding + frame;
  messageBox.style.height = `${Math.min(messageBox.scrollHeight + frame, most)}px`;
}

login.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = field(login, "user").value.trim();
  const roomName = field(login, "room").value.trim() || "general";
  const problem = !NAME.test(name) ? nameRule("name") : !validRoom(roomName) ? nameRule("room") : "";
  if (problem) {
    document.getElementById("login-problem")!.textContent = problem;
    field(login, NAME.test(name) ? "room" : "user").focus();
    return;
  }
  token = field(login, "token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  enter(name, roomName, "replace");
});

compose.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = messageBox.value.trim();
  if (!text || !room) return;
  if (mode.kind === "edit") {
    if (text !== mode.message.text) void room.edit(mode.message.id, text);
  } else if (mode.kind === "reply") room.post(text, mode.to.replyTo || mode.to.id);
  else if (text.startsWith(TOPIC_COMMAND)) void room.setTopic(text.slice(TOPIC_COMMAND.length).trim());
  else room.post(text);
  messageBox.value = "";
  setMode({ kind: "say" });
});

messageBox.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter starts a new line (and an input method's Enter is its own).
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    compose.requestSubmit();
  } else if (event.key === "Escape" && mode.kind !== "say") {
    event.preventDefault();
    if (mode.kind === "edit") messageBox.value = "";
    setMode({ kind: "say" });
  } else if (event.key === "Escape") {
    view.closeThread();
  } else if (event.key === "ArrowUp" && !messageBox.value) {
    const last = view.lastOwn();
    if (last) {
      event.preventDefault();
      setMode({ kind: "edit", message: last });
    }
  }
});
document.getElementById("context-cancel")!.addEventListener("click", () => {
  if (mode.kind === "edit") messageBox.value = "";
  setMode({ kind: "say" });
});
messageBox.addEventListener("input", fitMessageBox);

otherRoom.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = field(otherRoom, "room").value.trim();
  if (validRoom(name)) void switchTo(name);
  else roomProblem(nameRule("room"));
});
field(otherRoom, "room").addEventListener("input", () => roomProblem(""));

window.addEventListener("popstate", () => {
  const params = new URLSearchParams(location.search);
  const roomName = params.get("room") || "general";
  if (user && validRoom(roomName) && roomName !== room?.name) enter(user, roomName, "replace");
});

const params = new URLSearchParams(location.search);
const asked = { user: params.get("user") ?? "", room: params.get("room") || "general" };
if (NAME.test(asked.user) && validRoom(asked.room)) enter(asked.user, asked.room, "replace");
else showLogin(asked.user, asked.room, "");

// The chat page: a name (and a token, when the server asks for one), then a room.
// `?user=NAME&room=ROOM` skips the form; the URL keeps both, so a reload comes straight back,
// and each room entered is a step in the browser's history (Back returns to the room before).
import { auth, chat, Code, statusOf } from "./api";
import { Room } from "./room";
import { type CallEnd } from "./socket";
import { View } from "./view";

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const TOKEN_KEY = "grpc.chat.token";
const ROOMS_FROM_RECENT = 200;
const MESSAGE_LINES = 5;
const view = new View();
const login = document.getElementById("login") as HTMLFormElement;
const chatPane = document.getElementById("chat") as HTMLElement;
const compose = document.getElementById("compose") as HTMLFormElement;
const messageBox = document.getElementById("message") as HTMLTextAreaElement;
const otherRoom = document.getElementById("other-room") as HTMLFormElement;
const field = (form: HTMLFormElement, name: string): HTMLInputElement =>
  form.elements.namedItem(name) as HTMLInputElement;

let user = "";
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let room: Room | undefined;

/** What a name must be, said for the field it is typed in. */
function nameRule(what: "name" | "room"): string {
  return `A ${what} is 1-64 characters of A-Z a-z 0-9 _ . - (no spaces).`;
}

/** Why the server refused a session, in words for someone at the page. */
function refusal(end: CallEnd): string {
  if (end.code === Code.Unauthenticated) {
    // where a token comes from is said below the field
    return token
      ? `The server did not accept this token: ${end.message}.`
      : "This server needs a token: ask its operator for one.";
  }
  return `Your token does not allow this: ${end.message}.`;
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
  room?.leave();
  login.hidden = true;
  chatPane.hidden = false;
  roomProblem("");
  const refused = (end: CallEnd): void => showLogin(user, roomName, refusal(end));
  room = new Room(roomName, { user, metadata: auth(token), refused }, view);
  const url = `?${new URLSearchParams({ user, room: roomName }).toString()}`;
  if (step === "push") history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  void room.enter();
  void listRooms(roomName);
  messageBox.focus();
}

/** Enters another room once the server lets this session see it; refuses it in place if not. */
async function switchTo(name: string): Promise<void> {
  if (name === room?.name) return;
  try {
    await chat.getStats({ room: name }, { headers: auth(token) });
  } catch (error) {
    const status = statusOf(error);
    if (status.code === Code.PermissionDenied) {
      roomProblem(`You may not enter #${name}: ${status.message}.`);
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

/** The rooms of the newest messages, the one shown and "general", to switch between. */
async function listRooms(current: string): Promise<void> {
  const names = new Set([current, "general"]);
  try {
    for await (const reply of chat.getMessages({ limit: ROOMS_FROM_RECENT }, { headers: auth(token) })) {
      names.add(reply.room);
    }
  } catch {
    // the room shown and "general" are still there
  }
  if (current === room?.name) view.rooms([...names].sort(), current, (name) => void switchTo(name));
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
  const problem = !NAME.test(name) ? nameRule("name") : !NAME.test(roomName) ? nameRule("room") : "";
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
  if (text && room) {
    room.post(text);
    messageBox.value = "";
    fitMessageBox();
  }
});

messageBox.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter starts a new line (and an input method's Enter is its own).
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    compose.requestSubmit();
  }
});
messageBox.addEventListener("input", fitMessageBox);

otherRoom.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = field(otherRoom, "room").value.trim();
  if (NAME.test(name)) void switchTo(name);
  else roomProblem(nameRule("room"));
});
field(otherRoom, "room").addEventListener("input", () => roomProblem(""));

window.addEventListener("popstate", () => {
  const params = new URLSearchParams(location.search);
  const roomName = params.get("room") || "general";
  if (user && NAME.test(roomName) && roomName !== room?.name) enter(user, roomName, "replace");
});

const params = new URLSearchParams(location.search);
const asked = { user: params.get("user") ?? "", room: params.get("room") || "general" };
if (NAME.test(asked.user) && NAME.test(asked.room)) enter(asked.user, asked.room, "replace");
else showLogin(asked.user, asked.room, "");

// The chat page: a name (and a token, when the server asks for one), then a room.
// `?user=NAME&room=ROOM` skips the form; the URL keeps both, so a reload comes straight back.
import { auth, chat } from "./api";
import { Room } from "./room";
import { View } from "./view";

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const TOKEN_KEY = "grpc.chat.token";
const ROOMS_FROM_RECENT = 200;

const view = new View();
const login = document.getElementById("login") as HTMLFormElement;
const chatPane = document.getElementById("chat") as HTMLElement;
const compose = document.getElementById("compose") as HTMLFormElement;
const messageBox = document.getElementById("message") as HTMLInputElement;
const otherRoom = document.getElementById("other-room") as HTMLFormElement;
const field = (form: HTMLFormElement, name: string): HTMLInputElement =>
  form.elements.namedItem(name) as HTMLInputElement;

let user = "";
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let room: Room | undefined;

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

function enter(name: string, roomName: string): void {
  user = name;
  room?.leave();
  login.hidden = true;
  chatPane.hidden = false;
  const refused = (message: string): void => showLogin(user, roomName, message);
  room = new Room(roomName, { user, metadata: auth(token), refused }, view);
  const query = new URLSearchParams({ user, room: roomName });
  history.replaceState(null, "", `?${query.toString()}`);
  void room.enter();
  void listRooms(roomName);
  messageBox.focus();
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
  view.rooms([...names].sort(), current, (name) => enter(user, name));
}

login.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = field(login, "user").value.trim();
  const roomName = field(login, "room").value.trim() || "general";
  if (!NAME.test(name) || !NAME.test(roomName)) {
    document.getElementById("login-problem")!.textContent =
      "names are 1 to 64 letters, digits, '_', '.' or '-'";
    return;
  }
  token = field(login, "token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  enter(name, roomName);
});

compose.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = messageBox.value.trim();
  if (text && room) {
    room.post(text);
    messageBox.value = "";
  }
});

otherRoom.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = field(otherRoom, "room").value.trim();
  if (NAME.test(name)) {
    field(otherRoom, "room").value = "";
    enter(user, name);
  }
});

const params = new URLSearchParams(location.search);
const asked = { user: params.get("user") ?? "", room: params.get("room") || "general" };
if (NAME.test(asked.user) && NAME.test(asked.room)) enter(asked.user, asked.room);
else showLogin(asked.user, asked.room, "");

// A gRPC-Web client under Node that no one here wrote: connect-node's transport over HTTP/1.1.
// tests/e2e/test_web.py bundles and runs it: `node client.mjs BASE_URL ROOM` prints one JSON line.
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { ChatService } from "../src/gen/chat_pb";

const [baseUrl, room] = process.argv.slice(2);
const client = createClient(ChatService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }));

const stats = await client.getStats({ room });
const messages = [];
for await (const reply of client.getMessages({ room })) {
  messages.push({ id: Number(reply.id), user: reply.user, text: reply.message });
}
let refused = null;
try {
  await client.getStats({ room: "not a room name" });
} catch (error) {
  const failure = ConnectError.from(error);
  refused = { code: failure.code, message: failure.rawMessage };
}
console.log(JSON.stringify({ numMessages: stats.numMessages, messages, refused }));

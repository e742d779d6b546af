// The server's calls over gRPC-Web (GetStats, GetMessages, GetHistory, ListRooms, PostMessage),
// through connect-web's transport, with the metadata every call of a session carries (a token,
// when the server needs one).
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ChatService } from "./gen/chat_pb";

export type Metadata = Record<string, string>;

export const chat = createClient(
  ChatService,
  createGrpcWebTransport({ baseUrl: location.origin, useBinaryFormat: true }),
);

/** The metadata that proves a session knows the server's token (none without one). */
export function auth(token: string): Metadata {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** What the page understands of the reply kinds added after the tutorial's (`chat-features`). */
export const FEATURES = { "chat-features": "edits,reactions,replies,topics" };

/** A call's failure as a gRPC status code and the server's message. */
export function statusOf(error: unknown): { code: number; message: string } {
  const failure = ConnectError.from(error);
  return { code: failure.code, message: failure.rawMessage };
}

export { Code };

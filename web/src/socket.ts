// SendAndReceiveMessage over a WebSocket, as the server maps it (README, "WebSocket"): the
// metadata in a first text frame, then one binary frame per message each way; the call's
// status comes back as the close code (4000 + status) and reason.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ChatService,
  MessageReplySchema,
  MessageRequestSchema,
  type MessageReply,
  type MessageRequest,
} from "./gen/chat_pb";
import { Code, type Metadata } from "./api";

const CLOSE_CODE_BASE = 4000;
const HIGHEST_STATUS = 16;

export interface CallEnd {
  code: number;
  message: string;
}

export interface CallEvents {
  /** The socket is open and the metadata sent: messages may go. */
  opened: () => void;
  reply: (reply: MessageReply) => void;
  ended: (end: CallEnd) => void;
}

export class ChatSocket {
  private readonly socket: WebSocket;

  constructor(metadata: Metadata, events: CallEvents) {
    const method = ChatService.method.sendAndReceiveMessage;
    const url = new URL(`/${ChatService.typeName}/${method.name}`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => {
      this.socket.send(headerLines(metadata));
      events.opened();
    };
    this.socket.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) {
        events.reply(fromBinary(MessageReplySchema, new Uint8Array(event.data)));
      }
    };
    this.socket.onclose = (event) => {
      const status = event.code - CLOSE_CODE_BASE;
      events.ended(
        status >= 0 && status <= HIGHEST_STATUS
          ? { code: status, message: event.reason }
          : { code: Code.Unavailable, message: "the connection to the server was lost" },
      );
    };
  }

  /** Whether a message sent now goes out at once. */
  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  send(request: MessageRequest): void {
    this.socket.send(toBinary(MessageRequestSchema, request));
  }

  /** Hangs up: the call is cancelled, and no end is reported. */
  close(): void {
    this.socket.onopen = null;
    this.socket.onclose = null;
    this.socket.onmessage = null;
    this.socket.close(1000);
  }
}

/** A message to send, with a fresh idempotency key; `replyTo` names the message it answers. */
export function request(message: string, key: string, replyTo = 0n): MessageRequest {
  return create(MessageRequestSchema, { message, key, replyTo });
}

function headerLines(metadata: Metadata): string {
  return Object.entries(metadata)
    .map(([key, value]) => `${key}: ${value}\r\n`)
    .join("");
}

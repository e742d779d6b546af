"""The interactive chat on a terminal: incoming lines print above the prompt being typed."""

import asyncio

from grpclib.client import Channel
from grpclib.const import Cardinality
from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from chat import output
from gen.grpc.chat import MessageReply, MessageRequest

BIDI_PATH = "/grpc.chat.ChatService/SendAndReceiveMessage"


async def interactive(channel: Channel, user: str, room: str) -> int:
    """Chats until /quit or Ctrl-D."""
    metadata = {"chat-user": user, "chat-room": room}
    session: PromptSession[str] = PromptSession()
    async with channel.request(
        BIDI_PATH, Cardinality.STREAM_STREAM, MessageRequest, MessageReply, metadata=metadata
    ) as stream:
        await stream.send_request()

        async def show_replies() -> None:
            async for reply in stream:
                print(output.message_line(reply))

        with patch_stdout():
            printer = asyncio.create_task(show_replies())
            try:
                while True:
                    try:
                        text = await session.prompt_async(f"{user}@{room}> ")
                    except EOFError:
                        break
                    if text.strip() == "/quit":
                        break
                    if text:
                        await stream.send_message(MessageRequest(message=text))
                await stream.end()
            finally:
                printer.cancel()
    return 0

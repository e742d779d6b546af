"""`python -m chat.server`: the same as `chat-server`."""

from chat.server import main

main()

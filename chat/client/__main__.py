"""`python -m chat.client`: the same as `chat`."""

from chat.client import main

main()

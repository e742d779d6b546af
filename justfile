# Every command a developer needs. The project's virtual environment comes first on PATH.
export PATH := justfile_directory() + "/.venv/bin:" + env_var("PATH")

# Arguments reach the programs as they were typed ("$@"), and the recipes that run one hand over
# to it (exec, no-exit-message, and continue: Ctrl-C is the program's to answer): its exit code
# and its messages are the only ones.
set positional-arguments

# list the recipes
default:
    @just --list

# run the server on :50051 with the SQLite store (flags pass through, e.g. `just serve --store memory://`)
[no-exit-message]
[continue]
serve *FLAGS:
    @exec python -m chat.server "$@"

# print a signed token for a user (--user U [--rooms 'general,team-*'] [--ttl 1h]; key from CHAT_JWT_SECRET)
[no-exit-message]
[continue]
token *FLAGS:
    @exec python -m chat.server token "$@"

# chat in a room (interactive on a terminal; one message per line from a pipe)
[no-exit-message]
[continue]
chat *FLAGS:
    @exec python -m chat.client chat "$@"

# message count and who is online
[no-exit-message]
[continue]
stats *FLAGS:
    @exec python -m chat.client stats "$@"

# the history, oldest first (--room, --after, --limit, --follow, --json)
[no-exit-message]
[continue]
messages *FLAGS:
    @exec python -m chat.client messages "$@"

# regenerate gen/ from proto/chat.proto
gen:
    python tools/generate.py

# server CPU per message beside the tutorial's grpcio server (--quick, --rounds N, --json FILE, ...); --scale: replicas on Redis
bench *FLAGS:
    python -m bench "$@"

# lint and type-check
lint:
    ruff check chat tests tools bench soak abuse harness
    ruff format --check chat tests tools bench soak abuse harness
    mypy chat tests tools bench soak abuse harness

# lint, type-check, then the whole test suite
test *ARGS: lint
    pytest "$@"

# one client against the server: each HTTP/2 and store attack beside honest probes (--short, --only NAME, --list)
abuse *FLAGS:
    python -m abuse "$@"

# the full soak (minutes): 100 clients in 10 rooms through server and Redis kills, SQLite then Redis, then a memory server's restart
soak *FLAGS:
    python -m soak --store sqlite "$@"
    python -m soak --store redis "$@"
    python -m soak --store memory --kills 1 --messages 200 --rss-limit-mib 32 "$@"

# rebuild the web page (chat/server/web/static/, committed) from web/ and proto/chat.proto with npm
web:
    cd web && npm ci --no-audit --no-fund && npm run build

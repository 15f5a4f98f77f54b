#!/bin/sh
# Entrypoint of the stand-in Redis image (xtask/src/images/standin.rs), passing arguments like the
# official redis image: options alone (`--appendonly yes`) or a config file go to redis-server,
# and protected mode is off unless the arguments set it (the container's network is the boundary).
set -eu

# Options or a config file: they are for the server.
case "${1:-}" in
-* | *.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ]; then
    case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
    esac
fi
exec "$@"

#!/bin/sh
# Prepares and slims the root filesystem of the stand-in base image (xtask/src/images/standin.rs).
# It runs inside the debootstrapped tree (`chroot <rootfs> /bin/sh /slim.sh`) before the tree is
# imported, so nothing it removes ever reaches an image layer. Changing it changes the base
# image's tag, and so rebuilds it.
set -eu

say() { printf 'slim: %s\n' "$*"; }

# --- Users: postgres is 999:999, as in the official image --------------------------------------
# Manifests run the containers as numeric uid/gid 999, and files the image ships (the data
# directory below) must belong to that id. Debian gives the postgres user the next free system
# uid instead, so the user and group are renumbered and their files handed over.
if [ "$(id -u postgres)" != 999 ] || [ "$(id -g postgres)" != 999 ]; then
    old_uid=$(id -u postgres)
    old_gid=$(getent group postgres | cut -d: -f3)
    if getent passwd 999 >/dev/null || getent group 999 >/dev/null; then
        say "uid or gid 999 is already taken in the root filesystem"
        exit 1
    fi
    say "renumbering postgres from $old_uid:$old_gid to 999:999"
    groupmod --gid 999 postgres
    usermod --uid 999 --gid 999 postgres
    find / -xdev -uid "$old_uid" -exec chown --no-dereference 999 {} +
    find / -xdev -gid "$old_gid" -exec chgrp --no-dereference 999 {} +
fi

# --- The layouts the stand-in images use ------------------------------------------------------
# The Debian package creates a "main" cluster that the images never use.
rm -rf /var/lib/postgresql/15 /etc/postgresql/15/main /var/log/postgresql/*
# PGDATA of the postgres image: owned by 999 so that a fresh named volume mounted there inherits
# the ownership, as with the official image. /var/run/postgresql holds the Unix socket.
mkdir -p /var/lib/postgresql/data /var/run/postgresql
chown 999:999 /var/lib/postgresql /var/lib/postgresql/data /var/run/postgresql
chmod 700 /var/lib/postgresql/data
# As in the official image, whose Dockerfile makes it 3777 so that the server can run as any uid.
chmod 3777 /var/run/postgresql
# The redis image's working directory, where it writes its dump.
mkdir -p /data
chown 999:999 /data
# psql and pg_isready in /usr/bin are postgresql-common's Perl wrappers, and Perl goes below:
# point them at the binaries themselves.
for tool in psql pg_isready; do
    ln -sf "/usr/lib/postgresql/15/bin/$tool" "/usr/bin/$tool"
done

# --- What no container needs -------------------------------------------------------------------
say "removing documentation, locales, caches and the LLVM JIT"
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/lintian \
    /usr/share/locale/* /usr/share/i18n /usr/share/bash-completion /usr/share/common-licenses
# Package lists and downloaded packages: the image never runs apt.
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
find /var/log -type f -delete
# PostgreSQL's JIT compiles queries with LLVM (over 150 MB with its dependencies); the images
# run with jit = off, so the provider, its bitcode and the libraries only it uses go.
rm -rf /usr/lib/postgresql/15/lib/llvmjit.so /usr/lib/postgresql/15/lib/llvmjit_types.bc \
    /usr/lib/postgresql/15/lib/bitcode
rm -f /usr/lib/*-linux-gnu*/libLLVM-* /usr/lib/*-linux-gnu*/libz3.so*
# Full Perl serves only postgresql-common's cluster tools, which the images do not use (the
# essential perl-base stays).
rm -rf /usr/share/perl /usr/lib/*-linux-gnu*/perl /usr/lib/*-linux-gnu*/libperl.so*
# glibc's iconv modules: neither PostgreSQL nor Redis loads them.
rm -rf /usr/lib/*-linux-gnu*/gconv

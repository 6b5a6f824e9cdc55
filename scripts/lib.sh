# shellcheck shell=bash
# Shared by scripts/demo, scripts/test and .ci/run. On a Debian or Ubuntu
# machine with root it installs and starts everything the project needs:
# Docker engine, mmdebstrap, the pinned Python tools, the Debian base images.
# Every step checks first, so a second run only costs a few seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${GUN_VENV:-$ROOT/.venv}
IMAGE_REPO=gunicorn-uvicorn-nginx/debian
# Debian release number -> suite. Molecule platforms use $IMAGE_REPO:<number>
# (reached with docker exec) and $IMAGE_REPO-ssh:<number> (reached over SSH).
declare -A SUITES=([12]=bookworm [13]=trixie)
# The least a host Ansible can manage has: systemd as PID 1 and python3.
# Nothing the role could install itself (no D-Bus, no curl, no CA bundle): a
# package the role needs and forgets to install fails the first converge.
IMAGE_PACKAGES=systemd,systemd-sysv,python3
# Reached the way users reach their VMs: SSH with a key, as the unprivileged
# user "debian" with password-less sudo (as Debian's cloud images set it up).
SSH_IMAGE_PACKAGES=$IMAGE_PACKAGES,openssh-server,sudo
# The controller's key for the SSH images (made once per clone, gitignored).
SSH_KEY=$ROOT/.cache/ssh/id_ed25519

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

require_root() {
    [ "$(id -u)" = 0 ] || { echo "Run this as root (it installs packages and starts Docker)." >&2; exit 1; }
}

ensure_host_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    command -v curl >/dev/null || missing+=(curl)
    # The role ships what git tracks from a source in a git work tree.
    command -v git >/dev/null || missing+=(git)
    command -v openssl >/dev/null || missing+=(openssl)
    if [ ${#missing[@]} -gt 0 ]; then
        log "Installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Nothing starts dockerd on a machine without systemd as PID 1, and a daemon
# started by hand does not outlive the session: start it when it is not up.
ensure_docker() {
    docker info >/dev/null 2>&1 && return 0
    if [ -d /run/systemd/system ]; then
        systemctl start docker
    else
        log "Starting dockerd (log: /var/log/dockerd.log)"
        nohup dockerd >/var/log/dockerd.log 2>&1 &
    fi
    local i
    for i in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "dockerd did not come up; see /var/log/dockerd.log" >&2
    exit 1
}

# pinned_venv DIR SUFFIX PROGRAM: a virtualenv at DIR holding
# requirements-SUFFIX.txt under constraints-SUFFIX.txt, rebuilt when either
# file changed or PROGRAM is missing from it.
pinned_venv() {
    local dir=$1 suffix=$2 program=$3 want
    want=$(cat "$ROOT/requirements-$suffix.txt" "$ROOT/constraints-$suffix.txt" | sha256sum | cut -d' ' -f1)
    if [ -x "$dir/bin/$program" ] && [ "$(cat "$dir/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    log "Installing the pinned tools of requirements-$suffix.txt into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check \
        -r "$ROOT/requirements-$suffix.txt" -c "$ROOT/constraints-$suffix.txt" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "$want" >"$dir/.requirements.sha256"
}

ensure_venv() {
    pinned_venv "$VENV" dev molecule
    # Poetry, for the tests' poetry lock: a virtualenv of its own (its
    # dependencies would fight the tools'), linked into $VENV/bin.
    pinned_venv "$VENV/poetry" poetry poetry
    ln -sfn "$VENV/poetry/bin/poetry" "$VENV/bin/poetry"
}

ensure_ssh_key() {
    [ -f "$SSH_KEY" ] && return 0
    mkdir -p "$(dirname "$SSH_KEY")"
    command -v ssh-keygen >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
    }
    ssh-keygen -q -t ed25519 -N '' -C gunicorn-uvicorn-nginx-tests -f "$SSH_KEY"
}

# The host's CA bundle goes in beside the image's own, and pip inside the
# image trusts it: on a network whose HTTPS is inspected, pip installs (the
# role's, the controller image's) then work; elsewhere this changes nothing.
HOST_CA_HOOKS=(
    --customize-hook='mkdir -p "$1/usr/local/share/host-ca" && cp /etc/ssl/certs/ca-certificates.crt "$1/usr/local/share/host-ca/"'
    --customize-hook='printf "[global]\ncert = /usr/local/share/host-ca/ca-certificates.crt\n" >"$1/etc/pip.conf"'
)

# The recipe's hash is stored as a label, so an image is rebuilt exactly when
# this recipe changes, and shared by every scenario and the demo otherwise.
# image_is_current TAG HASH
image_is_current() {
    [ "$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "$1" 2>/dev/null)" = "$2" ]
}

image_recipe() {
    local suite=$1 flavour=$2
    if [ "$flavour" = ssh ]; then
        printf 'mmdebstrap --variant=apt --include=%s %s; host-ca; user debian %s\n' \
            "$SSH_IMAGE_PACKAGES" "$suite" "$(cat "$SSH_KEY.pub")"
    else
        printf 'mmdebstrap --variant=apt --include=%s %s; host-ca\n' "$IMAGE_PACKAGES" "$suite"
    fi
}

# build_image VERSION [ssh]
build_image() {
    local version=$1 flavour=${2:-} suite=${SUITES[$1]} tag recipe hash packages tarball hooks=()
    tag="$IMAGE_REPO${flavour:+-$flavour}:$version"
    recipe=$(image_recipe "$suite" "$flavour")
    hash=$(printf '%s' "$recipe" | sha256sum | cut -d' ' -f1)
    image_is_current "$tag" "$hash" && return 0
    log "Building $tag from Debian's archive ($suite)"
    # A file, not a pipe: a failed build must not leave an empty image behind
    # under the label that says it is up to date.
    tarball=$ROOT/.cache/${tag//[\/:]/-}.tar
    mkdir -p "$ROOT/.cache"
    packages=$IMAGE_PACKAGES
    if [ "$flavour" = ssh ]; then
        packages=$SSH_IMAGE_PACKAGES
        # The user and sudo rule a cloud image's first boot would make.
        hooks+=(--customize-hook='chroot "$1" useradd --create-home --shell /bin/bash debian'
            --customize-hook='printf "debian ALL=(ALL) NOPASSWD:ALL\n" >"$1/etc/sudoers.d/90-debian" && chmod 0440 "$1/etc/sudoers.d/90-debian"'
            --customize-hook="install -d -m 0700 \"\$1/home/debian/.ssh\" && cp '$SSH_KEY.pub' \"\$1/home/debian/.ssh/authorized_keys\""
            --customize-hook='chroot "$1" chown -R debian:debian /home/debian/.ssh')
    fi
    mmdebstrap --quiet --variant=apt --include="$packages" \
        "${HOST_CA_HOOKS[@]}" \
        "${hooks[@]}" "$suite" "$tarball"
    docker import --change 'CMD ["/lib/systemd/systemd"]' --change "LABEL recipe=$hash" "$tarball" "$tag" >/dev/null
    rm -f "$tarball"
}

# ensure_images VERSION... : both flavours of each Debian release.
ensure_images() {
    local v pids=()
    ensure_ssh_key
    for v in "$@"; do
        build_image "$v" &
        pids+=($!)
        build_image "$v" ssh &
        pids+=($!)
    done
    for v in "${pids[@]}"; do wait "$v"; done
}

# The controller with the newest supported ansible-core: Debian 13's Python
# (ansible-core 2.20+ needs 3.12+) with the pinned tools of
# requirements-newest.txt, Debian's docker client and git. It drives the Docker
# engine of this machine through its socket (run_newest_controller).
CONTROLLER_IMAGE=gunicorn-uvicorn-nginx/controller:13
ensure_controller_image() {
    local recipe hash
    recipe=$(printf 'mmdebstrap --variant=apt --include=python3,python3-venv,docker-cli,git trixie; host-ca; venv; SSL_CERT_FILE\n'
        cat "$ROOT/requirements-newest.txt" "$ROOT/constraints-newest.txt")
    hash=$(printf '%s' "$recipe" | sha256sum | cut -d' ' -f1)
    image_is_current "$CONTROLLER_IMAGE" "$hash" && return 0
    log "Building $CONTROLLER_IMAGE (ansible-core of requirements-newest.txt on Debian 13)"
    mkdir -p "$ROOT/.cache"
    mmdebstrap --quiet --variant=apt --include=python3,python3-venv,docker-cli,git \
        "${HOST_CA_HOOKS[@]}" \
        --customize-hook="cp '$ROOT/requirements-newest.txt' '$ROOT/constraints-newest.txt' \"\$1/tmp/\"" \
        --customize-hook='chroot "$1" python3 -m venv /opt/controller' \
        --customize-hook='env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$1" /opt/controller/bin/pip install -q --disable-pip-version-check -r /tmp/requirements-newest.txt -c /tmp/constraints-newest.txt' \
        --customize-hook='rm "$1/tmp/requirements-newest.txt" "$1/tmp/constraints-newest.txt"' \
        trixie "$ROOT/.cache/controller.tar"
    # uv trusts its own bundled roots unless told otherwise, and the tests'
    # uv lock must pass an inspecting proxy the host's bundle trusts.
    docker import --change 'ENV PATH=/opt/controller/bin:/usr/local/bin:/usr/bin:/bin' \
        --change 'ENV SSL_CERT_FILE=/usr/local/share/host-ca/ca-certificates.crt' \
        --change "LABEL recipe=$hash" "$ROOT/.cache/controller.tar" "$CONTROLLER_IMAGE" >/dev/null
    rm -f "$ROOT/.cache/controller.tar"
}

# run_newest_controller COMMAND...: COMMAND in the controller image, in this
# checkout (mounted at the same path, so Molecule's paths hold on both sides),
# on this machine's network and Docker engine.
run_newest_controller() {
    docker run --rm --network host -v /var/run/docker.sock:/var/run/docker.sock \
        -v "$ROOT:$ROOT" -w "$ROOT" -e COLUMNS -e GUN_FORBID_DEPRECATIONS=1 \
        -e ANSIBLE_CONFIG="$ROOT/ansible.cfg" "$CONTROLLER_IMAGE" "$@"
}

bootstrap() {
    require_root
    ensure_host_packages
    ensure_docker
    ensure_venv
    ensure_images "$@"
    export PATH="$VENV/bin:$PATH"
    export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
}

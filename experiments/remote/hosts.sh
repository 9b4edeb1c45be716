#!/usr/bin/env bash
# Two SSH "hosts" on this machine for NNI's remote training service: network namespaces
# nasext-h1 (10.231.0.11) and nasext-h2 (10.231.0.12) on a bridge (this machine: 10.231.0.1),
# each running Debian's openssh-server with key-based root login. The filesystem is shared, so
# the hosts run this machine's Python environment.
#
#   bash experiments/remote/hosts.sh up     # set up (installs openssh-server with apt if missing)
#   bash experiments/remote/hosts.sh down   # tear down: sshd stopped, namespaces and bridge removed
#
# Traffic stays on the bridge and in the namespaces: they have no other route.
set -euo pipefail
ROOT=${NASEXT_REMOTE_DIR:-/tmp/nasext-remote}
BRIDGE=nxbr0
HOST_IP=10.231.0.1
HOSTS=(h1:10.231.0.11 h2:10.231.0.12)

down() {
  for entry in "${HOSTS[@]}"; do
    name=${entry%%:*}
    if [ -f "$ROOT/$name/sshd.pid" ]; then kill "$(cat "$ROOT/$name/sshd.pid")" 2>/dev/null || true; fi
    # every process left in the namespace (sshd sessions, NNI's trial keeper, trials)
    for pid in $(ip netns pids "nasext-$name" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "nasext-$name" 2>/dev/null || true
    ip link delete "nx$name" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  rm -rf "$ROOT"
}

up() {
  [ "$(id -u)" = 0 ] || { echo "hosts.sh: needs root (ip netns, sshd)" >&2; exit 2; }
  if [ ! -x /usr/sbin/sshd ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server >/dev/null
  fi
  down
  mkdir -p "$ROOT/bin" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key" -C nasext-remote
  # the Python the hosts run (pythonPath of the config): this machine's, except that NNI 3.0's
  # remote service runs `python -m pip install nni --upgrade` on every host when it starts; the
  # hosts share this environment, which must not change under a running search
  PY=${NASEXT_REMOTE_PYTHON:-$(command -v python3)}
  for exe in python python3; do
    cat > "$ROOT/bin/$exe" <<WRAP
#!/bin/sh
if [ "\$1 \$2 \$3 \$4" = "-m pip install nni" ]; then echo "nasext remote host: keeping the installed nni"; exit 0; fi
exec "$PY" "\$@"
WRAP
    chmod +x "$ROOT/bin/$exe"
  done
  ip link add "$BRIDGE" type bridge
  ip addr add "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for entry in "${HOSTS[@]}"; do
    name=${entry%%:*}; addr=${entry#*:}; ns="nasext-$name"; dir="$ROOT/$name"
    mkdir -p "$dir"
    ip netns add "$ns"
    ip link add "nx$name" type veth peer name "nx${name}p"
    ip link set "nx${name}p" netns "$ns"
    ip link set "nx$name" master "$BRIDGE"
    ip link set "nx$name" up
    ip netns exec "$ns" ip addr add "$addr/24" dev "nx${name}p"
    ip netns exec "$ns" ip link set "nx${name}p" up
    ip netns exec "$ns" ip link set lo up
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
    cp "$ROOT/key.pub" "$dir/authorized_keys"
    cat > "$dir/sshd_config" <<CFG
ListenAddress $addr
Port 22
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
MaxSessions 50
MaxStartups 50
CFG
    ip netns exec "$ns" /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  done
  for entry in "${HOSTS[@]}"; do
    addr=${entry#*:}
    for _ in $(seq 50); do
      ssh -q -i "$ROOT/key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
          -o ConnectTimeout=2 "root@$addr" true && break
      sleep 0.2
    done
    ssh -q -i "$ROOT/key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        "root@$addr" true || { echo "hosts.sh: cannot log in to $addr" >&2; exit 1; }
  done
  echo "hosts up: ${HOSTS[*]} (key $ROOT/key, python $ROOT/bin)"
}

case "${1:-}" in
  up) up ;;
  down) down; echo "hosts down" ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

#!/bin/sh
# lineaged package: after removal.
# deb: $1 = remove | purge | upgrade | ...; rpm: $1 = packages left (0: removal).
set -e
case "$1" in
remove | purge | 0)
	# The kernel objects the sensor pinned stay attached without it: unpin.
	# (A pin path other than the default, kernel.pin_path, is the admin's.)
	if [ -d /sys/fs/bpf/lineaged ]; then
		rm -rf /sys/fs/bpf/lineaged || echo "lineaged: could not unpin /sys/fs/bpf/lineaged" >&2
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac
if [ "$1" = purge ]; then
	# The spool, the binary cache, the state and the logs. dpkg removes the
	# configuration files itself.
	rm -rf /var/lib/lineaged /var/log/lineaged /run/lineaged
	rmdir /etc/lineaged/rules /etc/lineaged 2>/dev/null || true
fi
exit 0

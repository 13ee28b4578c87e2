#!/bin/sh
# lineaged package: after install or upgrade.
# deb: $1 = configure, $2 = the version upgraded from (empty on a first install).
# rpm: $1 = the number of lineaged packages installed after this one (1: first install).
set -e
first=no
case "$1" in
configure) [ -z "$2" ] && first=yes ;;
1) first=yes ;;
esac
# State, spool and logs: root only. systemd creates them too (StateDirectory,
# LogsDirectory); a host without systemd gets them here.
install -d -m 0700 /var/lib/lineaged /var/log/lineaged
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$first" = yes ]; then
		# Enabled on the first install only: an admin's later `systemctl
		# disable` survives upgrades.
		systemctl enable lineaged.service >/dev/null 2>&1 || true
		systemctl start lineaged.service || echo "lineaged: the service did not start: see systemctl status lineaged" >&2
	else
		# An upgrade restarts a running sensor with the new binary; its
		# pinned BPF objects and spool carry over.
		systemctl try-restart lineaged.service || echo "lineaged: the service did not restart: see systemctl status lineaged" >&2
	fi
else
	echo "lineaged: systemd is not running here; run the sensor with: lineaged run --config /etc/lineaged/lineaged.yaml" >&2
fi
exit 0

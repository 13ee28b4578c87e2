#!/bin/sh
# lineaged package: before removal (the binary is still installed).
# deb: $1 = remove | upgrade | deconfigure | failed-upgrade.
# rpm: $1 = the number of lineaged packages left after this one (0: removal).
set -e
case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;; # an upgrade keeps the service, its hooks and its pinned objects
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now lineaged.service >/dev/null 2>&1 || true
fi
# Claude Code would otherwise run a hook that is gone at every tool call.
/usr/bin/lineaged hook uninstall || echo "lineaged: could not remove the hook from Claude Code's managed settings" >&2
exit 0
